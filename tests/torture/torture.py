"""The kill -9 torture run (issue 6): uploads must survive any crash, even a "reboot".

    python -m tests.torture.torture --rounds 500 [--site DIR] [--seed N]

Each round starts `gremlin serve` on one site, streams uploads (images, audio and video clips,
some corrupt) through the HTTP API from a few client threads, and SIGKILLs the server at a
random moment. In some rounds the transcoders die too and the next server sees another boot id
(GREMLIN_FAKE_BOOT_ID): a simulated reboot. At the end it waits until the site is quiet and
checks, through the CLI and HTTP only:

- every acknowledged upload (a 201) exists and is ready, or failed with a reason;
- no job is running without a live process behind it; nothing is queued;
- `gremlin fsck` finds nothing: every stored file matches its checksum, no orphan, nothing
  missing.

It prints the counts: rounds, uploads acknowledged, ready, failed, lost (must be 0), stuck
(must be 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def gremlin(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None
) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gremlin", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"gremlin {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def make_inputs(folder: Path) -> dict[str, bytes]:
    """A small zoo of uploads: JPEGs, a PNG, a corrupt JPEG, tiny audio and video clips."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs: dict[str, bytes] = {}
    for i, colour in enumerate(["red", "green", "blue", "orange"]):
        buf = io.BytesIO()
        Image.new("RGB", (640 + 16 * i, 480), colour).save(buf, "JPEG", quality=85)
        inputs[f"photo{i}.jpg"] = buf.getvalue()
    buf = io.BytesIO()
    Image.new("RGBA", (300, 200), (10, 20, 30, 128)).save(buf, "PNG")
    inputs["plan.png"] = buf.getvalue()
    inputs["corrupt.jpg"] = inputs["photo0.jpg"][:200] + os.urandom(3000)
    clips = {
        "tone.ogg": ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.6", "-c:a", "libvorbis"],
        "clip.mp4": [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x90:rate=10:duration=0.6",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    }
    for name, args in clips.items():
        out = folder / name
        if not out.exists():
            subprocess.run(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args, str(out)], check=True
            )
        inputs[name] = out.read_bytes()
    return inputs


@dataclasses.dataclass
class Tally:
    acknowledged: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> input name
    refused: int = 0
    errors: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def uploader(
    url: str,
    token: str,
    inputs: dict[str, bytes],
    tally: Tally,
    stop: threading.Event,
    rng: random.Random,
) -> None:
    names = sorted(inputs)
    weights = [1 if n.endswith((".ogg", ".mp4", "corrupt.jpg")) else 4 for n in names]
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while not stop.is_set():
            name = rng.choices(names, weights)[0]
            try:
                r = client.post(
                    f"{url}/api/v1/media",
                    files={"file": (name, inputs[name])},
                    data={"title": f"torture {name}"},
                )
            except httpx.HTTPError:
                with tally.lock:
                    tally.errors += 1  # the server died under us: not acknowledged
                time.sleep(0.05)
                continue
            with tally.lock:
                if r.status_code == 201:
                    tally.acknowledged[r.json()["id"]] = name
                else:
                    tally.refused += 1


class Server:
    def __init__(self, site: Path, env: dict[str, str]) -> None:
        self.log = open(site.parent / "torture-serve.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gremlin", "serve", str(site), "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, **env},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"serving (http://\S+)", line):
                self.url = m.group(1)
                break
        if not self.url:
            self.proc.kill()
            raise RuntimeError(f"server did not start; see {self.log.name}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self.close()
        return rc

    def close(self) -> None:
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()


def kill_transcoders(site: Path) -> int:
    """A simulated reboot: every job process recorded in the job directories dies."""
    killed = 0
    for pid_file in (site / "content" / "jobs").glob("*/pid"):
        try:
            pid = json.loads(pid_file.read_text())["pid"]
            os.killpg(pid, signal.SIGKILL)
            killed += 1
        except (ValueError, KeyError, OSError):
            pass
    return killed


def fsck_json(site: Path, env: dict[str, str]) -> dict:
    """`gremlin fsck --json` (its exit code says whether it found something; we read the JSON)."""
    result = subprocess.run(
        [sys.executable, "-m", "gremlin", "fsck", str(site), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    return json.loads(result.stdout)


def wait_quiet(site: Path, env: dict[str, str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = json.loads(gremlin("status", str(site), "--json", env=env))
        if status["jobs"]["queued"] == 0 and status["jobs"]["running"] == 0:
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"not quiet after {timeout}s: {status['jobs']}")
        time.sleep(0.5)


def run(rounds: int, site: Path, seed: int, out=sys.stdout) -> dict:
    rng = random.Random(seed)
    gremlin("init", str(site))
    (site / "gremlin.toml").write_text(
        "max_attempts = 3\nretry_backoff_seconds = 0.2\nretry_backoff_max_seconds = 1.0\n"
        "stall_seconds = 20\nshutdown_grace_seconds = 2\n"
    )
    env: dict[str, str] = {"GREMLIN_FAKE_BOOT_ID": "torture-boot-0"}
    gremlin("adduser", str(site), "tess", "--password-stdin", env=env, input="torture-pass\n")
    token = gremlin("token", str(site), "tess", env=env).strip()
    inputs = make_inputs(site.parent / "inputs")
    tally = Tally()
    reboots = 0
    for round_no in range(rounds):
        server = Server(site, env)
        stop = threading.Event()
        clients = [
            threading.Thread(
                target=uploader,
                args=(server.url, token, inputs, tally, stop, random.Random(rng.random())),
            )
            for _ in range(3)
        ]
        before = len(tally.acknowledged)
        for c in clients:
            c.start()
        # Let each round acknowledge something (a loaded machine is slow), then kill at a
        # random moment: mid-upload, mid-commit, mid-transcode.
        deadline = time.monotonic() + 30
        while len(tally.acknowledged) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))
        server.kill()
        stop.set()
        for c in clients:
            c.join()
        if round_no % 4 == 2 or rng.random() < 0.1:  # a simulated reboot, at least 1 in 4
            kill_transcoders(site)
            reboots += 1
            env = {"GREMLIN_FAKE_BOOT_ID": f"torture-boot-{reboots}"}
        print(
            f"round {round_no + 1}/{rounds}: acknowledged {len(tally.acknowledged)}",
            file=out,
            flush=True,
        )

    server = Server(site, env)
    try:
        wait_quiet(site, env, timeout=300 + 2 * len(tally.acknowledged))
        states: dict[str, int] = {"ready": 0, "failed": 0}
        lost, stuck, unexplained = [], [], []
        failed_inputs: set[str] = set()
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for media_id in tally.acknowledged:
                r = client.get(f"{server.url}/api/v1/media/{media_id}")
                if r.status_code != 200:
                    lost.append(media_id)
                    continue
                media = r.json()
                if media["state"] == "processing":
                    stuck.append(media_id)
                    continue
                states[media["state"]] += 1
                if media["state"] == "failed":
                    failed_inputs.add(tally.acknowledged[media_id])
                    if not media.get("reason"):
                        unexplained.append(media_id)
        jobs = json.loads(gremlin("jobs", str(site), "--json", env=env))
        running = [j for j in jobs if j["state"] in ("running", "queued")]
    finally:
        server.stop()
    fsck = fsck_json(site, env)
    result = {
        "rounds": rounds,
        "reboots": reboots,
        "acknowledged": len(tally.acknowledged),
        "ready": states["ready"],
        "failed": states["failed"],
        "lost": len(lost),
        "stuck": len(stuck),
        "failed_without_reason": len(unexplained),
        "failed_inputs": sorted(failed_inputs),
        "jobs_not_finished": len(running),
        "fsck_findings": fsck.get("findings", []),
        "refused": tally.refused,
        "connection_errors": tally.errors,
    }
    print(json.dumps(result, indent=2), file=out, flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--site", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    site = args.site or Path(f"/tmp/gremlin-torture-{os.getpid()}/site")
    site.parent.mkdir(parents=True, exist_ok=True)
    print(f"torture: site {site} seed {args.seed}", flush=True)
    result = run(args.rounds, site, args.seed)
    ok = not (
        result["lost"]
        or result["stuck"]
        or result["fsck_findings"]
        or result["jobs_not_finished"]
        or result["failed_without_reason"]
    )
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
