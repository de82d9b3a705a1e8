"""A config field's value from its type annotation: strings from the command line and numpy
scalars from Parquet coerced to it, and every value checked against it (type, finite, in the
range its Parquet column holds), with errors that name the field, the value and what is allowed.
"""
from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

from .errors import ConfigError

MAX_SEED = 2**32 - 1  # scikit-learn's random_state (the fast probe) takes seeds below 2**32
_INT64_MAX = 2**63 - 1  # every int field is an Int64 column of trials.parquet


def coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn strings from the command line (and numpy scalars from Parquet) into the type ``hint``
    of field ``name``."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar from a DataFrame row
    if not isinstance(value, str):
        if isinstance(value, int) and not isinstance(value, bool) and _base(hint) is float:
            return float(value)
        return value
    s = value.strip()
    if _is_optional(hint) and s.lower() in ("none", "null", ""):
        return None
    base = _base(hint)
    try:
        if base is bool:
            if s.lower() in ("true", "1", "yes", "on"):
                return True
            if s.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if base is int:
            try:
                return int(s)  # exact, however large; validate() bounds it
            except ValueError:
                f = float(s)  # 1e3 and 2.0 are ints too
                if f != int(f):
                    raise ValueError from None
                return int(f)
        if base is float:
            return float(s)
    except (ValueError, OverflowError):  # int(float("inf")) overflows
        raise ConfigError(f"{name}={value!r} is not a valid {base.__name__}") from None
    return s


def _base(hint):
    if get_origin(hint) is Literal:
        return str
    if get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in get_args(hint) if a is not type(None))
    return hint


def _is_optional(hint) -> bool:
    return get_origin(hint) in (typing.Union, types.UnionType) and type(None) in get_args(hint)


def check_type(name: str, hint: Any, value: Any) -> None:
    """ConfigError unless ``value`` has the type ``hint`` of field ``name`` (and is finite, in range)."""
    if value is None:
        if _is_optional(hint):
            return
        raise ConfigError(f"{name}=None is not allowed")
    if get_origin(hint) is Literal:
        one_of(name, value, get_args(hint))
        return
    base = _base(hint)
    ok = isinstance(value, base) and not (base in (int, float) and isinstance(value, bool))
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{name}={value!r} has type {type(value).__name__}; expected {base.__name__}")
    if base is float and value != value:
        raise ConfigError(f"{name}=nan is not a number")
    if base is float and value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}={value!r} is not a finite number")
    if base is int:
        lo, hi = (0, MAX_SEED) if name == "seed" else (-_INT64_MAX, _INT64_MAX)
        if not lo <= value <= hi:
            raise ConfigError(f"{name}={value!r} is out of range; allowed: {lo}..{hi}")


def one_of(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; allowed: {list(allowed)}")


def positive(name, value):
    if not value > 0:
        raise ConfigError(f"{name}={value!r} must be > 0")


def at_least(name, value, lo):
    if value < lo:
        raise ConfigError(f"{name}={value!r} must be >= {lo}")
