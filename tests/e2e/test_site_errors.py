"""What an admin sees when the site directory or its database is unusable: one `Error:` line,
a `Try:` hint, exit 1, never a traceback. Real `gremlin` processes on real files."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import gremlin_cmd, run_gremlin

pytestmark = pytest.mark.slow

COMMANDS = (("status",), ("jobs",), ("fsck", "--no-progress"), ("serve", "--bind", "127.0.0.1:0"))


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], result.stderr
    assert result.stderr.splitlines()[-1].startswith("Try: "), result.stderr


def run_command(command: tuple[str, ...], site: Path) -> subprocess.CompletedProcess[str]:
    return run_gremlin(command[0], str(site), *command[1:], timeout=60)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    assert run_gremlin("init", str(site)).returncode == 0
    return site


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_garbage_database_is_one_line(site: Path, command: tuple[str, ...]) -> None:
    (site / "db.sqlite").write_bytes(os.urandom(4096))
    assert_one_line_error(run_command(command, site), "db.sqlite", "damaged")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_truncated_database_is_one_line(site: Path, command: tuple[str, ...]) -> None:
    db = site / "db.sqlite"
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 3)
    assert_one_line_error(run_command(command, site), "db.sqlite", "damaged")


def test_emptied_database_beside_stored_content_is_refused(site: Path) -> None:
    """A db.sqlite cut to 0 bytes is a lost database, not a new site: starting afresh would
    make every stored file an orphan for fsck --repair to quarantine."""
    original = site / "content" / "originals" / "ab" / "photo.jpg"
    original.parent.mkdir(parents=True)
    original.write_bytes(b"\xff\xd8 a person's photo")
    (site / "db.sqlite").write_bytes(b"")
    for command in (*COMMANDS, ("init",), ("fsck", "--repair", "--no-progress")):
        result = run_command(command, site)
        assert_one_line_error(result, "db.sqlite")
        assert "backup" in result.stderr
    assert original.read_bytes() == b"\xff\xd8 a person's photo"
    assert (site / "db.sqlite").stat().st_size == 0  # nothing was created in its place


def test_content_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "content").write_text("not a directory")
    for command in (("init",), ("serve", "--bind", "127.0.0.1:0")):
        assert_one_line_error(run_command(command, site), "content")


def run_without_privilege(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """As an ordinary user. Root ignores permissions, so as root the command runs in a user
    namespace where it is a plain uid that owns our files: their permission bits apply."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("root without unshare(1): permissions cannot be tested")
        prefix = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    return subprocess.run(
        [*prefix, *gremlin_cmd(*args)], input=input, capture_output=True, text=True, timeout=60
    )


def test_site_without_permission_is_one_line(site: Path) -> None:
    for path in (site, *site.rglob("*")):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        for command in (*COMMANDS, ("adduser", "bob", "--password-stdin")):
            result = run_without_privilege(
                command[0], str(site), *command[1:], input="a long password\n"
            )
            assert_one_line_error(result, "db.sqlite", "permission")
        result = run_without_privilege("init", str(site / "inner"))
        assert_one_line_error(result, "permission")
    finally:
        for path in (site, *site.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_two_media_types_claiming_one_input_stop_serve_before_it_listens(tmp_path: Path) -> None:
    """A third-party type (an entry point) claiming the image type's inputs: a start-up error
    naming both and the setting, before the server serves (it used to serve, then stop)."""
    plugins = tmp_path / "plugins"
    dist = plugins / "gremlin_photos-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gremlin-photos\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[gremlin.media_types]\nphotos = gremlin.media.image:IMAGE\n"
    )
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))
    }
    site = tmp_path / "site"
    result = run_gremlin("serve", str(site), "--bind", "127.0.0.1:0", env=env, timeout=60)
    assert_one_line_error(result, "photos", "image")
    assert "media_type_choice" in result.stderr
    assert "serving" not in result.stdout + result.stderr
