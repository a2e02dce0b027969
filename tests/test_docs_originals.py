"""The docs tell the truth about who may fetch an original (it keeps the GPS position): its
owner and admins, everyone only with `public_originals`, which is off by default."""

from pathlib import Path

from gremlin.settings import load

DOCS = Path(__file__).parent.parent / "docs"


def test_docs_say_originals_are_for_owner_and_admins_unless_public_originals(
    tmp_path: Path,
) -> None:
    assert load(tmp_path, {}, environ={}).public_originals is False
    api = " ".join((DOCS / "api.md").read_text().split())
    assert "Originals are served to whoever may see the media" not in api
    assert "only to the media's owner and admins" in api
    assert "`public_originals = true`" in api
    pages = " ".join((DOCS / "pages.md").read_text().split())
    assert "for its owner and admins only (everyone with `public_originals`" in pages
