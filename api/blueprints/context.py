"""Typed access to what ``create_app`` put in ``app.extensions``."""

from __future__ import annotations

from flask import current_app

from kgrec.api.settings import Settings
from kgrec.api.store_handle import StoreHandle
from kgrec.recommenders.serving.impression_log import ImpressionLogger
from kgrec.recommenders.serving.live_state import LiveState
from kgrec.recommenders.serving.server import Server


def server() -> Server:
    return current_app.extensions["kgrec.server"]


def live() -> LiveState:
    return current_app.extensions["kgrec.live"]


def settings() -> Settings:
    return current_app.extensions["kgrec.settings"]


def store() -> StoreHandle:
    return current_app.extensions["kgrec.store"]


def impression_logger() -> ImpressionLogger | None:
    """The worker's impression logger, or None when ``KGREC_IMPRESSIONS=off``."""
    return current_app.extensions.get("kgrec.impressions")
