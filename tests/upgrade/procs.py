"""Real processes and load for the handover tests: `gremlin upgrade` as a process, a bounded
request loop on 127.0.0.1 in threads, the handover table read from outside."""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import ServerProcess, gremlin_cmd
from tests.web.helpers import jpeg_bytes


class UpgradeProcess(ServerProcess):
    """`gremlin upgrade SITE` as a real process; `url` once the new server serves."""

    def __init__(self, site: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.log_path = site.parent / f"upgrade-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            gremlin_cmd("upgrade", str(site), *extra),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.started = time.monotonic()
        self.url = ""

    def wait_serving(self, timeout: float = 60) -> str:
        self.url = self._wait_url(timeout)
        return self.url


def handover_rows(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM handover ORDER BY id").fetchall()
    finally:
        conn.close()


def wait_stage(db: Path, stage: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = handover_rows(db)
        if rows and rows[-1]["stage"] == stage:
            return
        time.sleep(0.05)
    raise AssertionError(f"stage {stage} not reached: {[dict(r) for r in handover_rows(db)]}")


def wait_health(url: str, pred, timeout: float = 30) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        try:
            last = httpx.get(f"{url}/healthz", timeout=5).json()
            if pred(last):
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"health never matched: {last}")


@dataclasses.dataclass
class Outcome:
    at: float
    status: int | None  # None: an exception (refused, reset ...)
    error: str = ""
    pid: int | None = None
    media_id: str | None = None


class Load:
    """Readers (GET /healthz, a new connection each) and one writer (POST /api/v1/media),
    until `stop`; every outcome recorded with its time."""

    def __init__(self, url: str, token: str, readers: int = 3) -> None:
        self.url, self.token = url, token
        self.stopping = threading.Event()
        self.reads: list[Outcome] = []
        self.writes: list[Outcome] = []
        self.retries: list[Outcome] = []  # the keep-alive reader's, see _read_keepalive
        self.threads = [threading.Thread(target=self._read) for _ in range(readers)]
        self.threads.append(threading.Thread(target=self._read_keepalive))
        self.threads.append(threading.Thread(target=self._write))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(60)

    def _read(self) -> None:
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                r = httpx.get(f"{self.url}/healthz", timeout=30, headers={"Connection": "close"})
                self.reads.append(Outcome(began, r.status_code, pid=r.json()["pid"]))
            except httpx.HTTPError as e:
                self.reads.append(Outcome(began, None, f"{type(e).__name__}: {e}"))
            time.sleep(0.005)

    def _read_keepalive(self) -> None:
        """A client that keeps its connection open between requests, as browsers do, and
        retries a GET once, on a new connection, when a kept-alive one closed before any
        answer (RFC 9112 9.3.1; browsers do). The old server closes connections still idle
        when its settle ends; a client stalled that long (0.2 s: CI's load) may send just as
        it does. The retry is recorded in `retries`, and its outcome in `reads`."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stopping.is_set():
                began = time.monotonic()
                try:
                    try:
                        r = client.get("/healthz")
                    except httpx.RemoteProtocolError as e:
                        if "without sending a response" not in str(e):
                            raise
                        self.retries.append(Outcome(began, None, str(e)))
                        r = client.get("/healthz")  # the pool opens a new connection
                    self.reads.append(Outcome(began, r.status_code, pid=r.json()["pid"]))
                except httpx.HTTPError as e:
                    self.reads.append(Outcome(began, None, f"keep-alive {type(e).__name__}: {e}"))
                time.sleep(0.005)

    def _write(self) -> None:
        image = jpeg_bytes()
        n = 0
        while not self.stopping.is_set():
            n += 1
            began = time.monotonic()
            try:
                r = httpx.post(
                    f"{self.url}/api/v1/media",
                    headers={"Authorization": f"Bearer {self.token}", "Connection": "close"},
                    files={"file": (f"p{n}.jpg", image, "image/jpeg")},
                    data={"title": f"photo {n}"},
                    timeout=30,
                )
                media_id = r.json().get("id") if r.status_code == 201 else None
                self.writes.append(Outcome(began, r.status_code, r.text[:200], media_id=media_id))
                if r.status_code == 503:
                    assert r.headers.get("retry-after")
            except httpx.HTTPError as e:
                self.writes.append(Outcome(began, None, f"{type(e).__name__}: {e}"))
            time.sleep(0.05)


def token_for(site: Path) -> str:
    from tests.conftest import run_gremlin

    assert run_gremlin("adduser", str(site), "ann", "--admin", "--password-stdin",
                       input="a long password\n").returncode == 0  # fmt: skip
    result = run_gremlin("token", str(site), "ann")
    assert result.returncode == 0, result.stderr
    return re.findall(r"gt_\S+", result.stdout)[0]
