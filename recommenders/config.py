"""Typed, validated recommender configuration.

Every recommender's ``Config`` is a frozen dataclass deriving from ``ModelConfig``. Its field
annotations are the rules: ``Literal[...]`` names the allowed choices, ``Annotated[float,
Range(0, 1)]`` bounds a number, ``int``/``float``/``bool``/``str``/``tuple[str, ...]`` fix the
type, ``X | None`` allows None. They are checked at construction, so a bad value (from
``create``, ``kgrec train --set`` or a tuner) fails where it is given, with a message naming the
option and what is allowed, instead of deep inside a fit.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number (``None``: unbounded); ``open_low``/``open_high`` exclude the bound."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def problem(self, value: float) -> str | None:
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return f"must be {'>' if self.open_low else '>='} {self.low}"
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            return f"must be {'<' if self.open_high else '<='} {self.high}"
        return None


#: Shorthands for the bounds most options need.
Positive = Range(0, None, open_low=True)
NonNegative = Range(0, None)
Fraction = Range(0, 1)
AtLeastOne = Range(1, None)


class ConfigError(ValueError):
    """A configuration value that is not allowed; ``option`` names the field."""

    def __init__(self, config: str, option: str, message: str) -> None:
        super().__init__(f"{config}: option {option!r} {message}")
        self.config = config
        self.option = option


@dataclass(frozen=True)
class ModelConfig:
    """Base of every ``Config``: ``seed`` plus validation of all fields against their annotations."""

    #: The recommender's name, for messages (set on each subclass by ``Recommender``).
    model_name: ClassVar[str] = ""

    seed: int = 42

    def __post_init__(self) -> None:
        who = self.model_name or type(self).__name__
        for name, rule in _rules(type(self)).items():
            value = getattr(self, name)
            try:
                checked = _check(rule, value)
            except _Bad as bad:
                raise ConfigError(who, name, f"{bad} (got {value!r})") from None
            if checked is not value:
                object.__setattr__(self, name, checked)

    def replace(self, **changes: Any) -> typing.Self:
        """A copy with ``changes``, validated; an unknown option is a ``ConfigError`` naming it."""
        known = {f.name for f in dataclasses.fields(self)}
        for name in changes:
            if name not in known:
                raise ConfigError(self.model_name or type(self).__name__, name,
                                  f"is not an option; options: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(cls, **values: Any) -> typing.Self:
        """``cls(**values)`` with an unknown option reported like a bad value."""
        return cls().replace(**values) if values else cls()

    @classmethod
    def choices(cls, option: str) -> tuple[Any, ...] | None:
        """The allowed values of a ``Literal`` option (for help texts and tuners), else None."""
        rule = _rules(cls).get(option)
        return rule.choices if rule is not None else None


class _Bad(Exception):
    pass


@dataclass(frozen=True)
class _Rule:
    kinds: tuple[Any, ...]  # accepted base types; an empty tuple accepts anything
    choices: tuple[Any, ...] | None = None
    bounds: Range | None = None
    optional: bool = False
    item: _Rule | None = None  # tuple elements


def _rules(cls: type) -> dict[str, _Rule]:
    """Each field's rule, read from the annotations of a ``ModelConfig`` class (cached per class)."""
    # ``cache`` wants Hashable arguments, and mypy reads a dataclass's instance ``__hash__`` into
    # ``type[ModelConfig]``: called with a plain ``type``, the cached function checks.
    return _class_rules(cls)


@cache
def _class_rules(cls: type) -> dict[str, _Rule]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: _rule(hints[f.name]) for f in dataclasses.fields(cls) if f.name in hints}


def _rule(hint: Any) -> _Rule:
    bounds = None
    if get_origin(hint) is Annotated:
        hint, *extras = get_args(hint)
        bounds = next((e for e in extras if isinstance(e, Range)), None)
    optional = False
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        optional = len(args) < len(get_args(hint))
        if len(args) == 1:
            inner = _rule(args[0])
            return dataclasses.replace(inner, optional=optional or inner.optional, bounds=bounds or inner.bounds)
        return _Rule(kinds=(), optional=optional)
    if get_origin(hint) is Literal:
        return _Rule(kinds=(), choices=get_args(hint), optional=optional)
    if get_origin(hint) is tuple:
        items = get_args(hint)
        return _Rule(kinds=(tuple,), item=_rule(items[0]) if items else None, bounds=bounds)
    if get_origin(hint) in (Mapping, dict) or hint in (Mapping, dict):
        return _Rule(kinds=(Mapping,))
    if hint in (int, float, bool, str):
        return _Rule(kinds=(hint,), bounds=bounds)
    return _Rule(kinds=())


def _check(rule: _Rule, value: Any) -> Any:
    if value is None:
        if rule.optional:
            return value
        raise _Bad("must not be None")
    if rule.choices is not None:
        if value not in rule.choices or isinstance(value, bool) != any(isinstance(c, bool) for c in rule.choices):
            raise _Bad("must be one of " + ", ".join(repr(c) for c in rule.choices))
        return value
    if not rule.kinds:
        return value
    kind = rule.kinds[0]
    if kind is bool:
        if not isinstance(value, bool):
            raise _Bad("must be true or false")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise _Bad("must be an integer")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad("must be a number")
        value = float(value)
        if value != value:
            raise _Bad("must not be NaN")
    elif kind is str:
        if not isinstance(value, str):
            raise _Bad("must be a string")
    elif kind is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise _Bad("must be a list")
        value = tuple(_check(rule.item, v) for v in value) if rule.item is not None else tuple(value)
    elif kind is Mapping and not isinstance(value, Mapping):
        raise _Bad("must be a mapping")
    if rule.bounds is not None and isinstance(value, int | float):
        problem = rule.bounds.problem(value)
        if problem:
            raise _Bad(problem)
    return value
