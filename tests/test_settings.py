import dataclasses
from pathlib import Path

import pytest

from gremlin.errors import SettingsError
from gremlin.settings import Settings, load

DOCS = Path(__file__).parent.parent / "docs" / "settings.md"


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path, environ={})
    assert s.bind == "127.0.0.1:8080"
    assert s.max_attempts == 3
    assert s.site == tmp_path.absolute()
    assert s.effective_jobs_concurrency() >= 1


def test_precedence_defaults_toml_env_flags(tmp_path: Path) -> None:
    (tmp_path / "gremlin.toml").write_text(
        'stall_seconds = 7.5\nmax_attempts = 4\nbind = "0.0.0.0:81"\n'
    )
    s = load(tmp_path, environ={})
    assert (s.stall_seconds, s.max_attempts, s.bind) == (7.5, 4, "0.0.0.0:81")
    env = {"GREMLIN_MAX_ATTEMPTS": "5", "GREMLIN_BIND": "127.0.0.1:82"}
    s = load(tmp_path, environ=env)
    assert (s.stall_seconds, s.max_attempts, s.bind) == (7.5, 5, "127.0.0.1:82")
    s = load(tmp_path, {"bind": "127.0.0.1:0", "max_attempts": None}, environ=env)
    assert (s.max_attempts, s.bind) == (5, "127.0.0.1:0")  # a None flag is "not given"


def test_gremlin_site_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREMLIN_SITE", str(tmp_path))
    assert load().site == tmp_path.absolute()


@pytest.mark.parametrize(
    ("toml", "name"),
    [
        ("max_attempts = 0", "max_attempts"),
        ('max_attempts = "many"', "max_attempts"),
        ("stall_seconds = -1", "stall_seconds"),
        ('bind = "nonsense"', "bind"),
        ("no_such_setting = 1", "no_such_setting"),
        ("image_quality = 101", "image_quality"),
        ("max_attempts = 2.5", "max_attempts"),
        # Not a number an actor can sleep or compare with (each crashed its actor in a loop).
        ("watchdog_poll_seconds = nan", "watchdog_poll_seconds"),
        ("gc_interval_seconds = inf", "gc_interval_seconds"),
        ("shutdown_grace_seconds = 1e400", "shutdown_grace_seconds"),
        ("stall_seconds = nan", "stall_seconds"),
        # A poll interval of 0 spun a whole core.
        ("watchdog_poll_seconds = 0", "watchdog_poll_seconds"),
        ("gc_interval_seconds = 0", "gc_interval_seconds"),
        ('media_type_choice = "garbage"', "media_type_choice"),
        ('media_type_choice = "image/gif="', "media_type_choice"),
    ],
)
def test_bad_values_name_the_setting_and_the_file(tmp_path: Path, toml: str, name: str) -> None:
    (tmp_path / "gremlin.toml").write_text(toml + "\n")
    with pytest.raises(SettingsError) as e:
        load(tmp_path, environ={})
    assert name in str(e.value)
    assert "gremlin.toml" in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"\$GREMLIN_STALL_SECONDS"):
        load(tmp_path, environ={"GREMLIN_STALL_SECONDS": "soon"})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_environment_value_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match=r"\$GREMLIN_KILL_GRACE_SECONDS.*finite"):
        load(tmp_path, environ={"GREMLIN_KILL_GRACE_SECONDS": value})


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gremlin.toml").write_text("this is = = not toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load(tmp_path, environ={})


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [f.name for f in dataclasses.fields(Settings) if f"`{f.name}`" not in text]
    assert not missing, f"settings missing from docs/settings.md: {missing}"


def test_every_setting_has_help() -> None:
    assert all(f.metadata.get("help") for f in dataclasses.fields(Settings))
