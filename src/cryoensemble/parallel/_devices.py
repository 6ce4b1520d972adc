"""Host devices: exposing CPU cores as JAX devices (before JAX starts, so no JAX import here)."""

from __future__ import annotations

import os

__all__ = ["PARTICLE_AXIS", "configure_host_devices"]

#: Name of the device-mesh axis over which particles are split.
PARTICLE_AXIS = "particles"


def configure_host_devices(n: int | None = None) -> None:
    """Expose ``n`` (default: all) CPU cores as JAX host devices, if JAX has not started yet.

    Sets ``XLA_FLAGS=--xla_force_host_platform_device_count=n``; leaves an explicit user setting
    of the device count untouched. No effect on GPUs, nor once JAX has initialised its backends.

    Arguments:
        n: number of host devices (default: ``os.cpu_count()``).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    n = n or os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
