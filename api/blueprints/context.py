"""Typed access to what ``create_app`` put in ``app.extensions``."""

from __future__ import annotations

from flask import current_app

from api.engine import Engine
from api.settings import Settings
from api.store_handle import StoreHandle


def engine() -> Engine:
    return current_app.extensions["kgrec.engine"]


def settings() -> Settings:
    return current_app.extensions["kgrec.settings"]


def store() -> StoreHandle:
    return current_app.extensions["kgrec.store"]
