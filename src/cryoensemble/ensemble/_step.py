"""The jitted inner step of ensemble optimisation: batch likelihoods, EM weights, loss, gradient
and the coordinate update.

For M walkers (the selected atoms stacked as (M, n, 3), A) and a batch of B particles, one jitted
function computes the (B, M) marginal log-likelihoods L (the walkers are stacked, the imaging
pipeline is vmapped over particles, the gradient comes from the projection's analytic adjoint via
one ``jax.vjp``), solves the batch weights by EM on the simplex (:func:`~cryoensemble.inference.
em_weights`, from uniform, a fixed number of updates), the loss
J = -mean_n logsumexp_m(L_nm + log w_m) and dJ/dx with w held fixed, then moves the atoms: each
selected atom ``step_size`` A along its own normalised descent direction, or an optax step.

With a 1-D "particles" mesh of several devices the batch is split with ``shard_map``: the rows of L
are gathered for the weights, the gradients summed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float

from cryoensemble.ensemble._config import InnerStepConfig
from cryoensemble.imaging import ImagingConfig
from cryoensemble.inference import (
    LikelihoodConfig,
    batch_log_likelihoods,
    em_weights,
    responsibilities,
)
from cryoensemble.ndimage import fourier_crop
from cryoensemble.optics import CTFParams
from cryoensemble.parallel import PARTICLE_AXIS
from cryoensemble.scattering import GaussianAtoms

__all__ = ["make_inner_step", "loss_and_gradient"]

_AXIS = PARTICLE_AXIS


def loss_and_gradient(
    pos: Float[Array, "m n 3"],
    amps: Float[Array, "n k"],
    variances: Float[Array, "n k"],
    images: Float[Array, "b p p"],
    rotations: Float[Array, "b 3 3"],
    shifts: Float[Array, "b 2"],
    ctf: CTFParams,
    valid: Float[Array, " b"],
    imaging: ImagingConfig,
    likelihood: LikelihoodConfig,
    em_iterations: int,
    axis_name: str | None = None,
) -> tuple[Float[Array, ""], Float[Array, " m"], Float[Array, "m n 3"]]:
    """Loss J (nats per particle), batch weights w (M,) and dJ/dpos (nats/A) on this device's
    share of the batch (the weights from all devices' rows when ``axis_name`` names a mesh axis).

    Arguments:
        pos: (M, n, 3) positions of the selected atoms of every walker, A.
        amps: (n, k) Gaussian amplitudes of the atoms, V A^3 (shared by the walkers).
        variances: (n, k) Gaussian variances of the atoms, A^2.
        images: (b, p, p) particle images (already at the imaging's box size).
        rotations: (b, 3, 3) particle rotations.
        shifts: (b, 2) particle shifts, A.
        ctf: the particles' CTF parameters (batched).
        valid: (b,) 1 for real particles, 0 for padding.
        imaging: the image formation of the likelihood.
        likelihood: the likelihood's settings.
        em_iterations: EM updates for the batch weights.
        axis_name: the mesh axis the batch is split over, or None.
    """
    m = pos.shape[0]
    amps_m = jnp.broadcast_to(amps, (m,) + amps.shape)
    vars_m = jnp.broadcast_to(variances, (m,) + variances.shape)

    def log_likelihoods(p):
        atoms = GaussianAtoms(p, amps_m, vars_m)
        return batch_log_likelihoods(atoms, images, rotations, shifts, ctf, likelihood, imaging)

    L, vjp = jax.vjp(log_likelihoods, pos)  # (b, M)
    L_all, valid_all = L, valid
    if axis_name is not None:
        L_all = jax.lax.all_gather(L, axis_name, tiled=True)
        valid_all = jax.lax.all_gather(valid, axis_name, tiled=True)
    log_w = jax.lax.stop_gradient(em_weights(L_all, valid_all, em_iterations).log_weights)
    w = jnp.exp(log_w)
    n_valid = jnp.maximum(jnp.sum(valid_all), 1.0)
    loss = -jnp.sum(valid_all * jax.nn.logsumexp(L_all + log_w[None, :], axis=1)) / n_valid
    (g,) = vjp(-(valid[:, None] * responsibilities(L, w)) / n_valid)
    if axis_name is not None:
        g = jax.lax.psum(g, axis_name)
    return loss, w, g


def _transform(step: InnerStepConfig) -> optax.GradientTransformation | None:
    if step.optimizer == "adam":
        return optax.adam(step.learning_rate)
    if step.optimizer == "sgd":
        return optax.sgd(step.learning_rate)
    return None


@eqx.filter_jit
def _inner_step(
    pos,
    opt_state,
    amps,
    variances,
    images,
    rotations,
    shifts,
    ctf,
    valid,
    *,
    imaging,
    likelihood,
    step,
    mesh,
):
    """The jitted inner step (module level, so that optimizers with equal static settings share
    the compiled code); see :func:`make_inner_step`."""
    images = fourier_crop(images, imaging.box_size)
    loss_fn = functools.partial(
        loss_and_gradient, imaging=imaging, likelihood=likelihood, em_iterations=step.em_iterations
    )
    args = (pos, amps, variances, images, rotations, shifts, ctf, valid)
    if mesh is None:
        loss, w, g = loss_fn(*args)
    else:
        part = P(_AXIS)
        loss, w, g = jax.shard_map(
            functools.partial(loss_fn, axis_name=_AXIS),
            mesh=mesh,
            in_specs=(P(), P(), P(), part, part, part, part, part),
            out_specs=(P(), P(), P()),
            check_vma=False,
        )(*args)
    norms = jnp.sqrt(jnp.sum(g * g, axis=-1, keepdims=True))  # (M, n, 1)
    tx = _transform(step)
    if tx is None:
        safe = jnp.where(norms > 0, norms, 1.0)
        delta = jnp.where(norms > 0, -jnp.float32(step.step_size) * g / safe, 0.0)
    else:
        delta, opt_state = tx.update(g, opt_state, pos)
    stats = {
        "grad_rms": jnp.sqrt(jnp.mean(norms[..., 0] ** 2, axis=1)),
        "step_rms": jnp.sqrt(jnp.mean(jnp.sum(delta * delta, axis=-1), axis=1)),
    }
    return pos + delta, opt_state, loss, w, stats


def make_inner_step(
    imaging: ImagingConfig,
    likelihood: LikelihoodConfig,
    step: InnerStepConfig,
    mesh: Mesh | None = None,
) -> tuple[Callable, Callable]:
    """One jitted inner step and the optimizer state's initialiser.

    ``step(pos (M, n, 3), opt_state, amps, variances, images, rotations, shifts, ctf, valid)
    -> (new_pos, opt_state, loss, w (M,), stats)`` and ``init(pos) -> opt_state``.
    ``stats``: the rms gradient norm (nats/A) and the rms displacement (A) per walker.

    Arguments:
        imaging: the image formation of the likelihood phase; when its box is smaller than the
            particles', the images are Fourier-cropped to it inside the step.
        likelihood: the likelihood's settings (marginal, mask, exact).
        step: the update (:class:`InnerStepConfig`).
        mesh: a 1-D "particles" mesh to split the batch over (None or one device: no split).
    """
    mesh = mesh if (mesh is not None and mesh.size > 1) else None
    tx = _transform(step)
    inner = functools.partial(
        _inner_step, imaging=imaging, likelihood=likelihood, step=step, mesh=mesh
    )

    def init(pos: Float[Array, "m n 3"]) -> Any:
        return None if tx is None else tx.init(jnp.asarray(pos))

    return inner, init
