"""Upgrades: the handover protocol, copy with transformations, socket passing, revert.

See protocol.py for the protocol step by step, and docs/upgrading.md for the admin's view.
"""

from .copy import CopyFailed, CopyReport, copy_database
from .handover import Handed, hand_over
from .listener import serve_handover_listener
from .offline import UpgradeResult, upgrade_offline, upgrade_offline_if_needed
from .protocol import Op, Stage, UpgradeError
from .revert import RevertResult, revert

__all__ = [
    "CopyFailed",
    "CopyReport",
    "Handed",
    "Op",
    "RevertResult",
    "Stage",
    "UpgradeError",
    "UpgradeResult",
    "copy_database",
    "hand_over",
    "revert",
    "serve_handover_listener",
    "upgrade_offline",
    "upgrade_offline_if_needed",
]
