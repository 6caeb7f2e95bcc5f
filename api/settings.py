"""API settings, read from ``KGREC_*`` environment variables and checked at startup.

A bad value stops the app before it serves anything, with a message naming the variable,
rather than surfacing later as a confusing 500.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kgrec.graph.store_factory import DEFAULT_STORE_URL
from kgrec.recommenders.serving.policies import POLICIES

STORE_SCHEMES = ("memory://", "neo4j://", "bolt://", "neo4j+s://", "bolt+s://")
MIN_KEY = 8


class SettingsError(ValueError):
    """A ``KGREC_*`` setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Everything the API needs to start.

    ``bundle`` is a directory written by ``kgrec train``. Three roles, each a key or a
    comma-separated list of keys (several at once, so keys can rotate): ``api_key`` (writer:
    writes; none configured means every write is refused with 401, never silently allowed),
    ``analyst_key`` (runs read-only Cypher on ``/v1/cypher``, may not write) and ``read_key``
    (when set, reads need a key too: a reader's, an analyst's or a writer's).
    """

    bundle: str | None = None
    store: str = DEFAULT_STORE_URL
    api_key: str | None = None
    analyst_key: str | None = None
    read_key: str | None = None
    max_body: int = 1_048_576
    default_model: str | None = None
    default_k: int = 10
    max_k: int = 1000
    max_batch: int = 10_000
    max_reasons: int = 5
    #: Seconds a client has to send a request's head, then its body (``kgrec serve``'s asgi worker).
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    #: Seconds a request's store calls may take together (Neo4j: the transactions' timeout, and how
    #: long the driver waits for an answer); past it a read is served from the bundle, a write is 504.
    store_timeout: float = 10.0
    #: Log every served list's impressions to the store (``recommenders.serving.impression_log``);
    #: ``KGREC_IMPRESSIONS=off`` serves without. At most ``impression_buffer`` impressions wait per
    #: worker; more are dropped and counted in /metrics, never slowing a request.
    impressions: bool = True
    impression_buffer: int = 50_000
    #: The serving policy of a request without ``policy`` (``recommenders.serving.policies``).
    default_policy: str = "learn"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``KGREC_BUNDLE``, ``KGREC_STORE``, ``KGREC_API_KEY``, ``KGREC_ANALYST_KEY``,
        ``KGREC_READ_KEY``, ``KGREC_MAX_BODY``, ``KGREC_DEFAULT_MODEL``, ``KGREC_DEFAULT_K``,
        ``KGREC_MAX_BATCH``, ``KGREC_MAX_REASONS``, ``KGREC_HEAD_TIMEOUT``, ``KGREC_BODY_TIMEOUT``,
        ``KGREC_STORE_TIMEOUT``, ``KGREC_IMPRESSIONS`` (on/off), ``KGREC_IMPRESSION_BUFFER``,
        ``KGREC_DEFAULT_POLICY``; ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "bundle": env.get("KGREC_BUNDLE") or None,
            "store": env.get("KGREC_STORE") or DEFAULT_STORE_URL,
            "api_key": env.get("KGREC_API_KEY") or None,
            "analyst_key": env.get("KGREC_ANALYST_KEY") or None,
            "read_key": env.get("KGREC_READ_KEY") or None,
            "default_model": env.get("KGREC_DEFAULT_MODEL") or None,
        }
        if env.get("KGREC_IMPRESSIONS"):
            values["impressions"] = _switch("KGREC_IMPRESSIONS", env["KGREC_IMPRESSIONS"])
        if env.get("KGREC_IMPRESSION_BUFFER"):
            values["impression_buffer"] = _int("KGREC_IMPRESSION_BUFFER", env["KGREC_IMPRESSION_BUFFER"])
        if env.get("KGREC_DEFAULT_POLICY"):
            values["default_policy"] = env["KGREC_DEFAULT_POLICY"]
        for name, var in (("max_body", "KGREC_MAX_BODY"), ("default_k", "KGREC_DEFAULT_K"),
                          ("max_batch", "KGREC_MAX_BATCH"), ("max_reasons", "KGREC_MAX_REASONS")):
            if env.get(var):
                values[name] = _int(var, env[var])
        for name, var in (("head_timeout", "KGREC_HEAD_TIMEOUT"), ("body_timeout", "KGREC_BODY_TIMEOUT"),
                          ("store_timeout", "KGREC_STORE_TIMEOUT")):
            if env.get(var):
                values[name] = _float(var, env[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()  # type: ignore[arg-type]

    def validated(self) -> Settings:
        """Return self, or raise ``SettingsError`` naming the first bad setting."""
        if self.bundle is not None:
            path = Path(self.bundle)
            if not path.is_dir():
                raise SettingsError(f"KGREC_BUNDLE: {self.bundle!r} is not a directory (train one with `kgrec train`)")
        if not self.store.startswith(STORE_SCHEMES):
            raise SettingsError(f"KGREC_STORE: {self.store!r} is not memory://DIR or neo4j://HOST:PORT[/DATABASE]")
        if self.store.startswith("memory://") and not self.store[len("memory://"):]:
            raise SettingsError("KGREC_STORE: memory:// needs a directory path")
        for var, raw in (("KGREC_API_KEY", self.api_key), ("KGREC_ANALYST_KEY", self.analyst_key),
                         ("KGREC_READ_KEY", self.read_key)):
            split_keys(var, raw)
        if not 1_024 <= self.max_body <= 1_073_741_824:
            raise SettingsError(f"KGREC_MAX_BODY: {self.max_body} is outside 1024..1073741824 bytes")
        if not 1 <= self.max_k <= 1000:
            raise SettingsError(f"max_k: {self.max_k} is outside 1..1000")
        if not 1 <= self.default_k <= self.max_k:
            raise SettingsError(f"KGREC_DEFAULT_K: {self.default_k} is outside 1..{self.max_k}")
        if not 1 <= self.max_batch <= 1_000_000:
            raise SettingsError(f"KGREC_MAX_BATCH: {self.max_batch} is outside 1..1000000")
        if not 1 <= self.max_reasons <= 100:
            raise SettingsError(f"KGREC_MAX_REASONS: {self.max_reasons} is outside 1..100")
        if not 1 <= self.impression_buffer <= 10_000_000:
            raise SettingsError(f"KGREC_IMPRESSION_BUFFER: {self.impression_buffer} is outside 1..10000000")
        if self.default_policy not in POLICIES:
            raise SettingsError(f"KGREC_DEFAULT_POLICY: {self.default_policy!r} is not one of {', '.join(POLICIES)}")
        for var, seconds in (("KGREC_HEAD_TIMEOUT", self.head_timeout), ("KGREC_BODY_TIMEOUT", self.body_timeout),
                             ("KGREC_STORE_TIMEOUT", self.store_timeout)):
            if not 0.1 <= seconds <= 3600:
                raise SettingsError(f"{var}: {seconds} is outside 0.1..3600 seconds")
        return self

    @property
    def writer_keys(self) -> tuple[bytes, ...]:
        return split_keys("KGREC_API_KEY", self.api_key)

    @property
    def analyst_keys(self) -> tuple[bytes, ...]:
        return split_keys("KGREC_ANALYST_KEY", self.analyst_key)

    @property
    def reader_keys(self) -> tuple[bytes, ...]:
        """Every key that may read: readers', analysts' and writers'."""
        return split_keys("KGREC_READ_KEY", self.read_key) + self.analyst_keys + self.writer_keys


def split_keys(var: str, raw: str | None) -> tuple[bytes, ...]:
    """The keys of a comma-separated setting (empty entries ignored), each at least 8 characters
    of printable ASCII without spaces, as bytes for ``hmac.compare_digest``."""
    keys = tuple(k.strip() for k in (raw or "").split(",") if k.strip())
    for key in keys:
        if len(key) < MIN_KEY or not key.isascii() or not key.isprintable() or " " in key:
            raise SettingsError(f"{var}: each key needs at least {MIN_KEY} printable ASCII characters, no spaces")
    return tuple(k.encode() for k in keys)


def _float(var: str, raw: str) -> float:
    try:
        return float(raw)  # NaN and infinities fail the range check in ``validated``
    except ValueError:
        raise SettingsError(f"{var}: {raw!r} is not a number of seconds") from None


def _switch(var: str, raw: str) -> bool:
    if raw.strip().lower() in ("on", "true", "1", "yes"):
        return True
    if raw.strip().lower() in ("off", "false", "0", "no"):
        return False
    raise SettingsError(f"{var}: {raw!r} is not on or off")


def _int(var: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{var}: {raw!r} is not an integer") from None
