"""Exceptions for user-facing errors.

Every error a user can cause (a malformed file, an impossible parameter) raises a subclass of
:class:`CryoEnsembleError` whose message names the file, the line or field, and the problem. The
command line prints the message without a traceback and exits with a non-zero status.
"""

from __future__ import annotations

import math
from typing import Any


class CryoEnsembleError(Exception):
    """Base class of all errors caused by user input."""


class InputError(CryoEnsembleError, ValueError):
    """A file or parameter given by the user is missing, malformed or out of range."""


class ConfigError(InputError):
    """A configuration file or option is invalid."""


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise :class:`InputError`.

    Arguments:
        name: the parameter's name, for the message (e.g. ``"pixel_size"``).
        value: the value to check (any type: non-numbers are reported, not raised as TypeError).
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_finite(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number, else raise :class:`InputError`.

    Arguments:
        name: the parameter's name, for the message.
        value: the value to check (any type: non-numbers are reported, not raised as TypeError).
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {value!r}")
    return v
