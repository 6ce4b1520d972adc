"""Spreading particles over all JAX devices (GPUs, or CPU cores exposed as host devices).

Work over particles is embarrassingly parallel: a 1-D mesh with axis ``"particles"`` shards the
leading axis of every argument, each device runs the same chunked computation on its share, and the
results are gathered back in order. On a CPU the cores appear as separate devices only when
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is set before JAX starts; the command line
does that (:func:`configure_host_devices`), a library user may do it too.

:func:`configure_host_devices` must run before JAX starts, so this package imports JAX only when
:func:`particle_mesh` or :func:`shard_over_particles` is first used (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

from cryoensemble.parallel._devices import PARTICLE_AXIS as PARTICLE_AXIS
from cryoensemble.parallel._devices import configure_host_devices as configure_host_devices

_SHARD = ("particle_mesh", "shard_over_particles")

__all__ = ["PARTICLE_AXIS", "configure_host_devices", *_SHARD]


def __getattr__(name: str) -> Any:
    """The JAX-dependent names, imported on first access."""
    if name in _SHARD:
        return getattr(importlib.import_module("cryoensemble.parallel._shard"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
