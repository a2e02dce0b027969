"""The soak run: one `gremlin serve` under a mixed load for a while, watched for leaks.

    python -m tests.torture.soak --minutes 10 [--workers 4] [--site DIR]

Client threads loop over what members and visitors do: pages (home, gallery, media page, tag,
feeds, oEmbed), files (whole, Range, conditional), uploads (multipart and tus, small ones on
hypercorn's path and large ones on the raw path), deletes of their own media, and what goes
wrong: uploads cut mid-body on both paths, tus PATCHes at a wrong offset, unknown ids. Every
`--sample` seconds it reads the server's open file descriptors, threads and RSS from /proc.

At the end, once the load has stopped and the jobs are done, it checks and prints:
- no answer was a 5xx, and the server's log has no traceback;
- open file descriptors and threads came back to what they were after the warm-up (small
  slack); in runs of 5 minutes or more, the median RSS of the second half is at most 8 MiB
  over the first half's (with glibc's default malloc arenas it grew 77 -> 142 MiB in 8
  minutes: gremlin/memory.py);
- every acknowledged upload that was not deleted is ready (or failed with a reason), and
  `gremlin fsck` finds nothing.
Exit code 0 if all hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

from tests.conftest import ServerProcess, gremlin_cmd

KiB = 1024
RSS_MINUTES = 5  # shorter runs are still warming up: RSS is printed, not judged
RSS_GROWTH_MIB = 8


def image_bytes(rng: random.Random, large: bool) -> bytes:
    """A JPEG: ~20 KiB (hypercorn's path) or, with noise, ~600 KiB (the raw path)."""
    size = (640, 480) if large else (320, 240)
    if large:
        im = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    else:
        im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95)
    return out.getvalue()


class Load:
    """What the client threads share: the server's address, tokens, results."""

    def __init__(self, url: str, tokens: list[str], names: list[str], seed: int) -> None:
        self.url, self.tokens, self.names, self.seed = url, tokens, names, seed
        self.statuses: collections.Counter[int] = collections.Counter()
        self.errors: list[str] = []
        self.media: dict[str, str] = {}  # acknowledged media id -> token of its owner
        self.deleted: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def note(self, what: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.errors.append(f"{what}: {response.status_code} {response.text[:200]}")

    def worker(self, number: int) -> None:
        rng = random.Random(self.seed * 100 + number)
        token = self.tokens[number % len(self.tokens)]
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                action = rng.choice(ACTIONS)
                try:
                    action(self, client, rng, auth, token)
                except httpx.HTTPError as e:
                    with self.lock:
                        self.errors.append(f"{action.__name__}: {type(e).__name__} {e}")

    def known(self, rng: random.Random) -> str | None:
        with self.lock:
            live = [m for m in self.media if m not in self.deleted]
        return rng.choice(live) if live else None


def pages(load: Load, client: httpx.Client, rng: random.Random, auth: dict, token: str) -> None:
    media = load.known(rng)
    paths = ["/", f"/u/{rng.choice(load.names)}", "/tag/soak", "/feed.atom", "/m/nosuchmedia"]
    if media:
        paths += [f"/m/{media}", f"/oembed?url={load.url}/m/{media}"]
    for path in paths:
        load.note(path, client.get(path, headers=auth if rng.random() < 0.5 else {}))


def files(load: Load, client: httpx.Client, rng: random.Random, auth: dict, token: str) -> None:
    media = load.known(rng)
    if media is None:
        return
    role = rng.choice(["thumb", "medium", "original"])
    whole = client.get(f"/files/{media}/{role}", headers=auth)
    load.note("file", whole)
    if whole.status_code == 200:
        etag = whole.headers["etag"]
        load.note(
            "304", client.get(f"/files/{media}/{role}", headers={**auth, "If-None-Match": etag})
        )
        load.note(
            "range", client.get(f"/files/{media}/{role}", headers={**auth, "Range": "bytes=-100"})
        )


def multipart(load: Load, client: httpx.Client, rng: random.Random, auth: dict, token: str) -> None:
    data = image_bytes(rng, rng.random() < 0.5)
    response = client.post(
        "/api/v1/media", headers=auth, data={"title": "soak", "tags": "soak"},
        files={"file": ("soak.jpg", data, "image/jpeg")},
    )  # fmt: skip
    load.note("multipart", response)
    if response.status_code == 201:
        with load.lock:
            load.media[response.json()["id"]] = token


def tus(load: Load, client: httpx.Client, rng: random.Random, auth: dict, token: str) -> None:
    data = image_bytes(rng, rng.random() < 0.7)
    tus_headers = {**auth, "Tus-Resumable": "1.0.0"}
    created = client.post("/api/v1/uploads", headers={
        **tus_headers, "Upload-Length": str(len(data)),
        "Upload-Metadata": "filename " + base64.b64encode(b"soak.jpg").decode()})  # fmt: skip
    load.note("tus create", created)
    if created.status_code != 201:
        return
    location = created.headers["location"]
    if rng.random() < 0.2:  # a PATCH at the wrong offset: 409
        load.note("tus conflict", client.patch(location, headers={
            **tus_headers, "Upload-Offset": "7", "Content-Type": "application/offset+octet-stream"},
            content=data[7:]))  # fmt: skip
    if rng.random() < 0.3:  # a PATCH cut mid-body, then resumed
        cut_upload(location, tus_headers, data[: len(data) // 2], len(data), rng)
    offset = int(client.head(location, headers=tus_headers).headers["upload-offset"])
    patch_headers = {**tus_headers, "Content-Type": "application/offset+octet-stream"}
    done = client.patch(
        location, content=data[offset:], headers={**patch_headers, "Upload-Offset": str(offset)}
    )
    load.note("tus patch", done)
    if done.status_code == 204 and (media := done.headers.get("gremlin-media-id")):
        with load.lock:
            load.media[media] = token


def cut_upload(url: str, headers: dict, part: bytes, length: int, rng: random.Random) -> None:
    """A PATCH (or, with no tus headers, a POST) that says `length` bytes and sends `part`."""
    parts = urlsplit(url)
    head = [f"PATCH {parts.path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {length}",
            "Upload-Offset: 0", "Content-Type: application/offset+octet-stream",
            *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + part)
        time.sleep(rng.random() * 0.3)


def cut_multipart(
    load: Load, client: httpx.Client, rng: random.Random, auth: dict, token: str
) -> None:
    data = image_bytes(rng, True)
    boundary = "soak" + str(rng.randrange(10**9))
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data  # fmt: skip
    parts = urlsplit(load.url)
    head = ["POST /api/v1/media HTTP/1.1", f"Host: {parts.netloc}",
            f"Content-Length: {len(body) + 100}",
            f"Content-Type: multipart/form-data; boundary={boundary}",
            *(f"{k}: {v}" for k, v in auth.items())]  # fmt: skip
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[: rng.randrange(len(body))])
        time.sleep(rng.random() * 0.3)


def delete(load: Load, client: httpx.Client, rng: random.Random, auth: dict, token: str) -> None:
    if rng.random() < 0.7:
        return
    with load.lock:
        own = [m for m, t in load.media.items() if t == token and m not in load.deleted]
    if not own:
        return
    media = rng.choice(own)
    response = client.delete(f"/api/v1/media/{media}", headers=auth)
    load.note("delete", response)
    if response.status_code in (200, 204):
        with load.lock:
            load.deleted.add(media)


ACTIONS = [pages, pages, files, files, multipart, tus, tus, cut_multipart, delete]


def proc_counts(pid: int) -> tuple[int, int, int]:
    """(open fds, threads, RSS KiB) of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    return fds, threads, rss


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(gremlin_cmd(*args), capture_output=True, text=True, timeout=300)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sample", type=float, default=10, help="seconds between samples")
    parser.add_argument("--site", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    site = args.site or Path(tempfile.mkdtemp(prefix="soak-")) / "site"
    assert run_cli("init", str(site)).returncode == 0
    names = ["ann", "bob"]
    tokens = []
    for name in names:
        subprocess.run(gremlin_cmd("adduser", str(site), name, "--password-stdin"),
                       input="correct horse battery staple\n", text=True, check=True,
                       capture_output=True)  # fmt: skip
        tokens.append(run_cli("token", str(site), name).stdout.split()[-1])
    server = ServerProcess(site)
    try:
        url = server.url
        load = Load(url, tokens, names, args.seed)
        threads = [threading.Thread(target=load.worker, args=(i,), daemon=True)
                   for i in range(args.workers)]  # fmt: skip
        for t in threads:
            t.start()
        samples = []
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(args.sample)
            samples.append(proc_counts(server.proc.pid))
            fds, n_threads, rss = samples[-1]
            print(
                f"fds {fds:4d}  threads {n_threads:3d}  rss {rss // KiB:4d} MiB"
                f"  answers {sum(load.statuses.values())}  media {len(load.media)}",
                flush=True,
            )
        load.stop.set()
        for t in threads:
            t.join(120)
        quiet = wait_quiet(site)
        time.sleep(3)  # idle keep-alive connections closed, threads back in the cache
        after = proc_counts(server.proc.pid)
        return report(load, samples, after, quiet, site, server.log(), args.minutes)
    finally:
        server.stop(timeout=60)


def wait_quiet(site: Path, stall: float = 120) -> bool:
    """Wait until no job is queued or running; False if none finished for `stall` seconds
    (the load queues uploads faster than two cores process them: the backlog drains after)."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < stall:
        jobs = json.loads(run_cli("status", str(site), "--json").stdout)["jobs"]
        if jobs["queued"] + jobs["running"] == 0:
            return True
        if jobs["done"] + jobs["failed"] != last:
            last, since = jobs["done"] + jobs["failed"], time.monotonic()
        time.sleep(2)
    return False


def report(load: Load, samples: list, after: tuple[int, int, int], quiet: bool, site: Path,
           log: str, minutes: float) -> int:  # fmt: skip
    problems = list(load.errors[:20])
    warm = samples[min(2, len(samples) - 1)]
    if after[0] > warm[0] + 8:
        problems.append(f"open fds grew: {warm[0]} after warm-up, {after[0]} at rest")
    if after[1] > warm[1] + 8:
        problems.append(f"threads grew: {warm[1]} after warm-up, {after[1]} at rest")
    first, last = samples[: len(samples) // 2], samples[len(samples) // 2 :]
    if first:  # medians: one sample taken mid-request is not a trend
        growth = statistics.median(s[2] for s in last) - statistics.median(s[2] for s in first)
        if minutes >= RSS_MINUTES and growth > RSS_GROWTH_MIB * KiB:
            problems.append(
                f"RSS grew {growth / KiB:.0f} MiB from the first half to the second"
                f" (median; more than {RSS_GROWTH_MIB})"
            )
    if not quiet:
        problems.append("jobs stopped finishing: none for 120 s with some still queued")
    if "Traceback" in log:
        problems.append("traceback in the server log: " + log[log.index("Traceback") :][:1500])
    states = collections.Counter()
    with httpx.Client(base_url=load.url, timeout=60) as client:
        for media, token in load.media.items():
            if media in load.deleted:
                continue
            got = client.get(f"/api/v1/media/{media}", headers={"Authorization": f"Bearer {token}"})
            state = got.json()["state"] if got.status_code == 200 else f"HTTP {got.status_code}"
            states[state] += 1
    if set(states) - {"ready", "failed"}:
        problems.append(f"media not settled: {dict(states)}")
    fsck = run_cli("fsck", str(site), "--json")
    if fsck.returncode != 0 or '"findings": []' not in fsck.stdout:
        problems.append(f"fsck: exit {fsck.returncode} {fsck.stdout[:500]}")
    print(f"answers {dict(sorted(load.statuses.items()))}")
    print(
        f"media acknowledged {len(load.media)}, deleted {len(load.deleted)}, states {dict(states)}"
    )
    print(
        f"at rest: fds {after[0]}, threads {after[1]}, rss {after[2] // KiB} MiB"
        f" (after warm-up: fds {warm[0]}, threads {warm[1]}, rss {warm[2] // KiB} MiB)"
    )
    for p in problems:
        print("PROBLEM:", p)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
