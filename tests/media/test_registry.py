"""The media-type registry: entry points, conflicts, the choosing setting, sniffing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from gremlin.errors import SettingsError, Unsupported
from gremlin.media import Kind, MediaTypeConflict, load_media_types, sniff
from gremlin.media.image import IMAGE
from gremlin.settings import Settings


@dataclasses.dataclass
class FakeType:
    """Claims files starting with `magic` as `mime`."""

    name: str
    magic: bytes
    mime: str
    kind: Kind = Kind.VIDEO

    @property
    def mimes(self) -> Sequence[str]:
        return (self.mime,)

    def sniff(self, head: bytes) -> str | None:
        return self.mime if head.startswith(self.magic) else None


GIF = b"GIF89a" + b"\0" * 100


def test_builtin_image_type_is_loaded_through_the_entry_point() -> None:
    types = load_media_types(Settings())
    assert types["image"] is IMAGE
    media_type, mime = sniff(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, types)
    assert media_type is IMAGE and mime == "image/png"


def test_two_types_claiming_one_input_is_a_startup_error_naming_both_and_the_setting() -> None:
    gifvideo = FakeType("gifvideo", b"GIF8", "image/gif")
    with pytest.raises(MediaTypeConflict) as caught:
        load_media_types(Settings(), {"gifvideo": gifvideo})
    error = caught.value
    assert "'image'" in error.message and "'gifvideo'" in error.message
    assert "image/gif" in error.message
    assert error.hint is not None and "media_type_choice" in error.hint


def test_the_setting_chooses_the_winner_and_the_loser_stops_claiming() -> None:
    gifvideo = FakeType("gifvideo", b"GIF8", "image/gif")
    types = load_media_types(
        Settings(media_type_choice="image/gif=gifvideo"), {"gifvideo": gifvideo}
    )
    media_type, mime = sniff(GIF, types)
    assert media_type.name == "gifvideo" and mime == "image/gif"
    assert "image/gif" not in types["image"].mimes
    # The image type still takes everything else it accepts.
    assert sniff(b"\xff\xd8\xff\xe0" + b"\0" * 100, types)[0].name == "image"

    types = load_media_types(Settings(media_type_choice="image/gif=image"), {"gifvideo": gifvideo})
    assert sniff(GIF, types)[0] is IMAGE


def test_a_choice_naming_a_type_that_does_not_claim_the_input_is_refused() -> None:
    gifvideo = FakeType("gifvideo", b"GIF8", "image/gif")
    with pytest.raises(SettingsError, match="media_type_choice"):
        load_media_types(Settings(media_type_choice="image/gif=audio"), {"gifvideo": gifvideo})
    with pytest.raises(SettingsError, match="media_type_choice"):
        load_media_types(Settings(media_type_choice="nonsense"), {})


def test_overlapping_sniffers_with_undeclared_mimes_are_refused_at_sniff_time() -> None:
    a = FakeType("a", b"XYZ", "x/a")
    b = FakeType("b", b"XY", "x/b")
    with pytest.raises(MediaTypeConflict, match="'a' and 'b'"):
        sniff(b"XYZ123", {"a": a, "b": b})


def test_unsupported_input_lists_what_is_supported() -> None:
    types = load_media_types(Settings(), {"fake": FakeType("fake", b"FAKE", "x/fake")})
    with pytest.raises(Unsupported) as caught:
        sniff(b"hello, I am text\n" * 10, types)
    assert caught.value.status == 415
    assert "text" in caught.value.message
    assert caught.value.hint is not None
    assert "image/jpeg" in caught.value.hint and "x/fake" in caught.value.hint


def test_installed_types_are_loaded_once_per_choice() -> None:
    from gremlin.media.registry import installed_media_types

    first = installed_media_types(Settings())
    assert first["image"] is IMAGE
    first.clear()  # callers get their own dict
    assert installed_media_types(Settings())["image"] is IMAGE


def test_a_sniffer_that_raises_claims_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeType):
        def sniff(self, head: bytes) -> str | None:
            raise RuntimeError("oops")

    types = {"image": IMAGE, "broken": Broken("broken", b"", "x/broken")}
    assert sniff(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, types)[0] is IMAGE
    assert "sniffer failed: name=broken" in caplog.text
