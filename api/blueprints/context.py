"""Typed access to what ``create_app`` put in ``app.extensions``."""

from __future__ import annotations

from flask import current_app

from api.settings import Settings
from api.store_handle import StoreHandle
from recommenders.live import LiveState
from recommenders.serving import Server


def server() -> Server:
    return current_app.extensions["kgrec.server"]


def live() -> LiveState:
    return current_app.extensions["kgrec.live"]


def settings() -> Settings:
    return current_app.extensions["kgrec.settings"]


def store() -> StoreHandle:
    return current_app.extensions["kgrec.store"]
