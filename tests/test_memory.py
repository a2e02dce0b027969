"""gremlin/memory.py: the server asks glibc for at most two malloc arenas. Checked in a fresh
process by what glibc itself reports (malloc_stats prints one "Arena N:" block per arena) after
eight threads have allocated at once; the same threads without the limit make more arenas, so
the check can fail."""

import subprocess
import sys

import pytest

PROGRAM = """
import ctypes, sys, threading
from gremlin.memory import limit_malloc_arenas
if sys.argv[1] == "limit":
    assert limit_malloc_arenas(2)
start = threading.Barrier(8)
def work():
    start.wait()
    for _ in range(2000):
        blocks = [bytearray(4096) for _ in range(16)]
        del blocks
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(mode: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr.count("Arena ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_server_process_uses_at_most_two_malloc_arenas() -> None:
    assert arenas("limit") <= 2
    assert arenas("free") > 2


def test_an_admins_malloc_arena_max_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    from gremlin.memory import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
