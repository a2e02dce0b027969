"""Shared fixtures: a real site in tmp_path, a real server process on port 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gremlin.settings import Settings, load
from gremlin.store import Site, init_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return init_site(tmp_path / "site")


@pytest.fixture
def settings(site: Site) -> Settings:
    return load(site.root, {"bind": "127.0.0.1:0"}, environ={})


def gremlin_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gremlin", *args]


def run_gremlin(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gremlin_cmd(*args),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class ServerProcess:
    """`gremlin serve SITE --bind 127.0.0.1:0` as a real process; `url` once it serves."""

    def __init__(self, site: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.log_path = site.parent / f"serve-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            gremlin_cmd("serve", str(site), "--bind", "127.0.0.1:0", *extra),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.url = self._wait_url()

    def _wait_url(self, timeout: float = 30) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"serving (http://\S+)", line):
                return m.group(1)
        self.proc.kill()
        self.proc.wait()
        self.close()
        raise AssertionError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.close()
        return rc

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def server_factory() -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Tracked(ServerProcess):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, **k)  # type: ignore[arg-type]
            started.append(self)

    yield Tracked
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        s.close()
