"""Spreading particles over all JAX devices (GPUs, or CPU cores exposed as host devices).

Work over particles is embarrassingly parallel: a 1-D mesh with axis ``"particles"`` shards the
leading axis of every argument, each device runs the same chunked computation on its share, and the
results are gathered back in order. On a CPU the cores appear as separate devices only when
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is set before JAX starts; the command line
does that (:func:`configure_host_devices`), a library user may do it too.
"""

from __future__ import annotations

import os

PARTICLE_AXIS = "particles"


def configure_host_devices(n: int | None = None) -> None:
    """Expose ``n`` (default: all) CPU cores as JAX host devices, if JAX has not started yet.

    Leaves an explicit user setting of the device count untouched. No effect on GPUs.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    n = n or os.cpu_count() or 1
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def particle_mesh(devices=None):
    """A 1-D device mesh over ``devices`` (default: all local devices) named ``"particles"``."""
    import jax
    import numpy as np
    from jax.sharding import Mesh

    devices = jax.local_devices() if devices is None else devices
    return Mesh(np.asarray(devices), (PARTICLE_AXIS,))


def shard_over_particles(fn, args, mesh, replicated=None):
    """Apply ``fn`` (batched over the leading axis of ``args``) with that axis split over ``mesh``.

    The batch is padded to a multiple of the device count by repeating its last item, and the
    padding is cut from the result. ``fn`` must be traceable (it runs inside ``shard_map``).
    ``replicated`` (any pytree, e.g. the atoms) is passed whole to every device as
    ``fn(args, replicated)``; it is marked device-varying inside, so that gradients with respect
    to it (custom adjoints included) are summed over the devices on the way out.
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec

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
