"""Configuration files (YAML or TOML) and JSON records, shared by every command."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from cryoensemble.errors import ConfigError

__all__ = ["read_mapping", "to_jsonable"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """The top-level mapping of a ``.yaml``/``.yml``/``.json`` or ``.toml`` file.

    Raises :class:`ConfigError` naming the file for a missing file, an unknown suffix, a parse
    error, a document that is not a mapping, an option name that is not text, or a NaN or
    infinite number anywhere (named by its key); an empty document is an empty mapping.

    Arguments:
        path: the configuration file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: unknown config format {suffix!r}; use .yaml, .yml or .toml")
    except ConfigError:
        raise
    except Exception as err:  # yaml/tomllib raise many kinds; RecursionError on deep nesting
        detail = " ".join(str(err).split())  # yaml quotes the offending lines: keep one line
        raise ConfigError(f"{path}: cannot parse config file: {detail}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of option: value")
    _check_values(path, data, "")
    return data


def _check_values(path: Path, value: Any, key: str) -> None:
    """Option names are text and numbers finite, at every level (YAML allows neither rule)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: option {key or 'config'}: {value} is not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                where = f" in {key}" if key else ""
                raise ConfigError(f"{path}: option name {k!r}{where} is not text")
            _check_values(path, v, f"{key}.{k}" if key else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(path, v, f"{key}.{i}")


def validate_config(
    model: type[ModelT],
    data: Mapping[str, Any],
    source: str,
    labels: Mapping[str, str] | None = None,
) -> ModelT:
    """``model(**data)``, with every validation error in one :class:`ConfigError` line.

    Arguments:
        model: a pydantic configuration class (the workflows' ``*Config``).
        data: field values (from a file and/or the command line).
        source: where the values came from, first in the message (a file name, "command line").
        labels: how to name a field in the message (e.g. ``{"pixel_size": "--pixel-size"}``);
            default the field name.

    Raises:
        ConfigError: "SOURCE: invalid configuration: FIELD: MESSAGE (got VALUE); ...", unknown
            keys named as such.
    """
    try:
        return model(**data)
    except ValidationError as err:
        raise ConfigError(_validation_message(err, source, model.__name__, labels or {})) from None


def _validation_message(
    err: ValidationError, source: str, model: str, labels: Mapping[str, str]
) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "config"
        loc = labels.get(loc, loc)
        msg = e["msg"].removeprefix("Value error, ")
        # pydantic's word for an unknown key: models say extra_forbidden, dataclasses unexpected...
        if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = f"unknown option (not a {model} field; check the spelling)"
        inp = e.get("input")
        shown = "" if isinstance(inp, dict) or e["type"] == "missing" else f" (got {inp!r})"
        parts.append(f"{loc}: {msg}{shown}")
    return f"{source}: invalid configuration: " + "; ".join(parts)


def to_jsonable(x: Any) -> Any:
    """``json.dumps`` default: numpy arrays and scalars as Python values, anything else as str.

    Arguments:
        x: a value ``json`` cannot serialise by itself.
    """
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
