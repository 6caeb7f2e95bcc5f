"""What a store raises: the bottom of the graph layer, so every module above can name it."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store could not do what was asked (bad URL, bad data, refused write)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; the caller may retry later."""


class StoreTimeout(StoreUnavailable):
    """The store did not answer within the time allowed (its transaction timeout, or the
    caller's deadline); the store itself may be fine. ``allowed`` is that time in seconds."""

    def __init__(self, message: str, allowed: float) -> None:
        super().__init__(message)
        self.allowed = allowed
