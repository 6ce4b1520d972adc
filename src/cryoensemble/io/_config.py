"""Configuration files (YAML or TOML) and JSON records, shared by every command."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from cryoensemble.errors import ConfigError


def read_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a ``.yaml``/``.yml``/``.json`` or ``.toml`` file.

    Raises :class:`ConfigError` naming the file for a missing file, an unknown suffix, a parse
    error or a document that is not a mapping; an empty document is an empty mapping.
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
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: unknown config format {suffix!r}; use .yaml, .yml or .toml")
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(f"{path}: cannot parse config file: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of option: value")
    return data


def to_jsonable(x):
    """``json.dumps`` default: numpy arrays and scalars as Python values, anything else as str."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
