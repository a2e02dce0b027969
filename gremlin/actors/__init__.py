"""Actors: long-lived tasks in the server's nursery tree, each runnable alone in a test."""

from .supervise import supervise

__all__ = ["supervise"]
