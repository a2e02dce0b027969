"""The handover protocol between the running (old) server and `gremlin upgrade` (new).

DESIGN.md "Upgrade handover", step by step, with the stage each step records in the OLD
database's `handover` table (`Stage`, kept beside its table in gremlin.store.handover):

    new                                         old (serving)
    ---                                         -------------
    (no stage: copy_database of the live data
      into db_new.sqlite, steps, integrity
      check; a failure ends here, recorded
      at once as ABORTED "before maintenance")
    REQUESTED: request recorded;
      connect SITE/gremlin.sock,
      send HANDOVER {id}                  ->    MAINTENANCE: new writes 503, in-flight writes
                                                  finish (bounded), writer actors stopped
                                                  (transcoders left running), store frozen,
                                          <-    ACKNOWLEDGED: WAL checkpointed, reply
    COPYING ... COPIED: db_new.sqlite built
      again from the frozen file (recopy.py),
      counts, steps, fsync
    send SOCKET                           ->    SOCKET_SENT: reply with the listening socket
                                          <-      (SCM_RIGHTS)
    send EXIT                             ->    EXITING: reply, stop accepting, drain, exit
    wait for the old pid to exit (pidfd)
    RENAMING: db.sqlite -> db_<old>.sqlite,
      db_new.sqlite -> db.sqlite, fsync dir
    DONE: serve on the inherited socket,
      reconcile jobs; integrity_check of the
      new db.sqlite in the background

Any failure before RENAMING aborts (ABORTED + reason): the new process removes db_new.sqlite
and sends ABORT (or just dies: the old sees the control connection close); the old leaves
maintenance by itself on ABORT, on the connection closing, or after
`handover_timeout_seconds` without a message.

Messages are one JSON object per line: `{"op": ...}` from new to old, `{"ok": true, ...}` or
`{"ok": false, "error": "..."}` back. PROTOCOL_VERSION changes only if that stops being true.
"""

from __future__ import annotations

import enum
from typing import Any

from ..errors import GremlinError
from ..store.handover import Stage

PROTOCOL_VERSION = 1

__all__ = [
    "PROTOCOL_VERSION",
    "HandoverAborted",
    "HandoverRefused",
    "HandoverTimeout",
    "Op",
    "Stage",
    "UpgradeError",
    "reply_error",
    "reply_ok",
]


class Op(enum.Enum):
    HANDOVER = "handover"  # {"id": handover id}: enter maintenance, reply when acknowledged
    SOCKET = "socket"  # reply carries the listening socket
    EXIT = "exit"  # stop accepting, drain, exit
    ABORT = "abort"  # {"reason"}: leave maintenance, the handover is off


def request(op: Op, **fields: Any) -> dict[str, Any]:
    return {"op": op.value, "protocol": PROTOCOL_VERSION, **fields}


def reply_ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def reply_error(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


class UpgradeError(GremlinError):
    code = "upgrade_failed"


class HandoverRefused(UpgradeError):
    def __init__(self, why: str) -> None:
        super().__init__(
            f"the running server refused the handover: {why}",
            hint="See its log; nothing was changed. Try again, or stop it and upgrade offline.",
        )


class HandoverTimeout(UpgradeError):
    def __init__(self, stage: Stage, seconds: float) -> None:
        super().__init__(
            f"the handover timed out after {seconds:g}s at stage {stage.value}",
            hint="Nothing was changed; the old server goes on serving. Raise"
            " handover_timeout_seconds if the database is very large.",
        )
        self.stage = stage


class HandoverAborted(UpgradeError):
    def __init__(self, stage: Stage, why: str) -> None:
        super().__init__(
            f"the upgrade was aborted at stage {stage.value}: {why}",
            hint="Nothing was changed; the old server goes on serving (docs/upgrading.md).",
        )
        self.stage = stage
