"""Sharding a batched computation over a 1-D device mesh along the particle axis."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from cryoensemble.parallel._devices import PARTICLE_AXIS

__all__ = ["particle_mesh", "shard_over_particles"]


def particle_mesh(devices: Sequence[jax.Device] | np.ndarray | None = None) -> Mesh:
    """A 1-D device mesh named ``"particles"``.

    Arguments:
        devices: the devices of the mesh (default: all local devices).
    """
    devices = jax.local_devices() if devices is None else devices
    return Mesh(np.asarray(devices), (PARTICLE_AXIS,))


def shard_over_particles(
    fn: Callable[..., Any], args: Any, mesh: Mesh, replicated: Any = None
) -> Any:
    """Apply ``fn`` (batched over the leading axis of ``args``) with that axis split over ``mesh``.

    The batch is padded to a multiple of the device count by repeating its last item, and the
    padding is cut from the result.

    Arguments:
        fn: a traceable function of ``args`` (or of ``(args, replicated)``); it runs inside
            ``shard_map``.
        args: a pytree of arrays sharing a leading (particle) axis.
        mesh: the device mesh (:func:`particle_mesh`).
        replicated: any pytree (e.g. the atoms) passed whole to every device as
            ``fn(args, replicated)``; it is marked device-varying inside, so that gradients with
            respect to it (custom adjoints included) are summed over the devices on the way out.
    """
    n_dev = mesh.devices.size
    b = jax.tree.leaves(args)[0].shape[0]
    if n_dev == 1:
        return fn(args) if replicated is None else fn(args, replicated)
    pad = (-b) % n_dev
    if pad:
        args = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), args)
    spec = PartitionSpec(PARTICLE_AXIS)
    if replicated is None:
        out = jax.shard_map(fn, mesh=mesh, in_specs=(spec,), out_specs=spec)(args)
    else:

        def local(a, r):
            r = jax.tree.map(lambda x: jax.lax.pcast(x, PARTICLE_AXIS, to="varying"), r)
            return fn(a, r)

        out = jax.shard_map(local, mesh=mesh, in_specs=(spec, PartitionSpec()), out_specs=spec)(
            args, replicated
        )
    return jax.tree.map(lambda y: y[:b], out)
