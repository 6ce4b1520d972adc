"""The jitted inner step of ensemble optimisation (on the four-atom toy's particles) and the
Fourier crop it applies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cryoensemble.ensemble import InnerStepConfig, make_inner_step
from cryoensemble.imaging import ImagingConfig
from cryoensemble.inference import LikelihoodConfig, batch_log_likelihoods
from cryoensemble.ndimage import fourier_crop
from cryoensemble.scattering import GaussianAtoms


def test_fourier_crop_keeps_low_frequencies_and_white_noise_white():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(200, 32, 32)).astype(np.float32)
    small = np.asarray(fourier_crop(jnp.asarray(noise), 16))
    assert small.shape == (200, 16, 16)
    # white noise of variance 1 becomes white noise of variance (16/32)^2, except the Nyquist
    # row and column of the small grid, which keep half their power (the real part)
    np.testing.assert_allclose(small.var(), 0.25 * (1 - (2 * 16 - 1) / 256 / 2), rtol=0.02)
    ps = np.abs(np.fft.fft2(small)) ** 2
    inner = ps.mean(0)[np.ix_(np.r_[0:8, 9:16], np.r_[0:8, 9:16])]
    assert inner.std() / inner.mean() < 0.1
    # a smooth image keeps its values at the coarser samples
    y, x = np.mgrid[:32, :32] - 16
    g = np.exp(-(x**2 + y**2) / (2 * 4.0**2)).astype(np.float32)
    gs = np.asarray(fourier_crop(jnp.asarray(g[None]), 16))[0]
    y2, x2 = np.mgrid[:16, :16] - 8
    np.testing.assert_allclose(gs, np.exp(-(x2**2 + y2**2) / (2 * 2.0**2)), atol=2e-3)


def test_normalized_step_moves_every_atom_by_the_step_length(toy, toy_data):
    particles, _ = toy_data
    cfg = ImagingConfig(box_size=32, pixel_size=4.0, pad_factor=1.0, half_width=4, chunk_size=64)
    settings = InnerStepConfig(step_size=0.7)
    step, init = make_inner_step(cfg, LikelihoodConfig(kind="marginal"), settings)
    atoms = toy.toy_atoms(toy.rectangle(50.0))
    pos = jnp.stack([atoms.positions, jnp.asarray(toy.rectangle(60.0), jnp.float32)])
    b = particles.batch(np.arange(64), pad_to=64)
    new, _, loss, w, stats = step(
        pos,
        init(pos),
        atoms.amplitudes,
        atoms.variances,
        b.images,
        b.rotations,
        b.shifts,
        b.ctf,
        b.valid,
    )
    moved = np.linalg.norm(np.asarray(new - pos), axis=-1)
    np.testing.assert_allclose(moved, 0.7, rtol=1e-4)
    assert np.isfinite(float(loss)) and abs(float(np.sum(w)) - 1) < 1e-5
    np.testing.assert_allclose(stats["step_rms"], 0.7, rtol=1e-4)


def test_gradient_is_the_loss_gradient(toy, toy_data):
    """The step's direction equals -grad J from autodiff of the loss with w held fixed (sgd with
    learning rate 1 returns exactly -grad)."""
    particles, _ = toy_data
    cfg = ImagingConfig(box_size=32, pixel_size=4.0, pad_factor=1.0, half_width=4, chunk_size=64)
    opts = LikelihoodConfig(kind="marginal")
    settings = InnerStepConfig(optimizer="sgd", learning_rate=1.0)
    step, init = make_inner_step(cfg, opts, settings)
    atoms = toy.toy_atoms(toy.rectangle(50.0))
    pos = jnp.stack([atoms.positions, jnp.asarray(toy.rectangle(60.0), jnp.float32)])
    b = particles.batch(np.arange(48), pad_to=64)  # with padding
    new, _, loss, w, _ = step(
        pos,
        init(pos),
        atoms.amplitudes,
        atoms.variances,
        b.images,
        b.rotations,
        b.shifts,
        b.ctf,
        b.valid,
    )

    def J(p):
        amps = jnp.broadcast_to(atoms.amplitudes, (2,) + atoms.amplitudes.shape)
        var = jnp.broadcast_to(atoms.variances, (2,) + atoms.variances.shape)
        L = batch_log_likelihoods(
            GaussianAtoms(p, amps, var), b.images, b.rotations, b.shifts, b.ctf, opts, cfg
        )
        lse = jax.nn.logsumexp(L + jnp.log(w)[None], axis=1)
        return -jnp.sum(b.valid * lse) / jnp.sum(b.valid)

    np.testing.assert_allclose(float(J(pos)), float(loss), rtol=1e-5)
    g = jax.grad(J)(pos)
    np.testing.assert_allclose(np.asarray(new - pos), -np.asarray(g), rtol=2e-3, atol=1e-6)
