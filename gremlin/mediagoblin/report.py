"""The import report: counts per kind, what was skipped and why, problems, notes.

As text for a person, and as JSON (`--json`):

    {"dry_run": bool,
     "imported": {"users", "media", "collections", "collection_items", "comments": int},
     "already": {same keys: imported by an earlier run, left alone},
     "media_by_kind": {"image", "video", "audio": int},
     "skipped": [{"kind", "id", "label", "why", "path"}],     # not imported, on purpose
     "problems": [{"kind", "id", "label", "why", "path"}],    # something is wrong
     "notes": [{"kind", "id", "label", "why", "path"}],       # imported, worth knowing
     "mapped": [{"kind", "id", "target"}]}                    # this run: MediaGoblin id -> ours
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from .plan import Issue, Kind, Plan

COUNTED = (Kind.USER, Kind.MEDIA, Kind.COLLECTION, Kind.COLLECTION_ITEM, Kind.COMMENT)
PLURAL = {
    Kind.USER: "users",
    Kind.MEDIA: "media",
    Kind.COLLECTION: "collections",
    Kind.COLLECTION_ITEM: "collection_items",
    Kind.COMMENT: "comments",
}
MEDIA_KINDS = ("image", "video", "audio")


@dataclasses.dataclass
class Report:
    dry_run: bool
    imported: Counter[Kind] = dataclasses.field(default_factory=Counter)
    already: Counter[Kind] = dataclasses.field(default_factory=Counter)
    media_by_kind: Counter[str] = dataclasses.field(default_factory=Counter)
    skipped: list[Issue] = dataclasses.field(default_factory=list)
    problems: list[Issue] = dataclasses.field(default_factory=list)
    notes: list[Issue] = dataclasses.field(default_factory=list)
    mapped: list[tuple[Kind, str, str]] = dataclasses.field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: Plan, *, dry_run: bool) -> Report:
        return cls(
            dry_run=dry_run,
            already=Counter(plan.already),
            skipped=list(plan.skipped),
            problems=list(plan.problems),
            notes=list(plan.notes),
        )

    def add(self, kind: Kind, source_id: str, target: str, media_kind: str | None = None) -> None:
        self.imported[kind] += 1
        self.mapped.append((kind, source_id, target))
        if media_kind:
            self.media_by_kind[media_kind] += 1

    @property
    def failed(self) -> bool:
        """True when something could not be imported because something is wrong."""
        return bool(self.problems)

    def to_json(self) -> dict[str, Any]:
        def issues(items: list[Issue]) -> list[dict[str, Any]]:
            return [
                {
                    "kind": i.kind.value,
                    "id": i.source_id,
                    "label": i.label,
                    "why": i.why,
                    "path": i.path,
                }
                for i in items
            ]

        return {
            "dry_run": self.dry_run,
            "imported": {PLURAL[k]: self.imported[k] for k in COUNTED},
            "already": {PLURAL[k]: self.already[k] for k in COUNTED},
            "media_by_kind": {k: self.media_by_kind[k] for k in MEDIA_KINDS},
            "skipped": issues(self.skipped),
            "problems": issues(self.problems),
            "notes": issues(self.notes),
            "mapped": [{"kind": k.value, "id": s, "target": t} for k, s, t in self.mapped],
        }

    def to_text(self) -> str:
        verb = "Would import" if self.dry_run else "Imported"
        lines = [
            f"{verb} from MediaGoblin"
            + (" (dry run: nothing written)" if self.dry_run else "")
            + ":"
        ]
        for kind in COUNTED:
            n, before = self.imported[kind], self.already[kind]
            extra = []
            if kind is Kind.MEDIA and n:
                extra.append(
                    ", ".join(
                        f"{self.media_by_kind[k]} {k}" for k in MEDIA_KINDS if self.media_by_kind[k]
                    )
                )
            if before:
                extra.append(f"{before} already imported")
            tail = f"  ({'; '.join(extra)})" if extra else ""
            lines.append(f"  {PLURAL[kind]:<17}{n:>5}{tail}")
        for title, items in (
            ("Skipped", self.skipped),
            ("Problems", self.problems),
            ("Notes", self.notes),
        ):
            if not items:
                continue
            lines.append(f"{title} ({len(items)}):")
            for i in items:
                where = f" [{i.path}]" if i.path else ""
                lines.append(f"  {i.kind.value} {i.source_id} ({i.label}): {i.why}{where}")
        if self.imported[Kind.MEDIA] and not self.dry_run:
            lines.append(
                f"The {self.imported[Kind.MEDIA]} imported media are queued for processing:"
                " `gremlin serve SITE` processes them (see `gremlin jobs SITE`)."
            )
        return "\n".join(lines)
