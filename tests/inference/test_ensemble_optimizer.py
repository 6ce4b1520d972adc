"""Ensemble optimisation: the inner step, the four-atom toy (M = K, K + 1, K - 1) and, as a slow
test, the adenylate-kinase acceptance run (reduced size)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.imaging._pipeline import ImagingConfig
from cryoensemble.inference._likelihood_matrix import LikelihoodOptions
from cryoensemble.inference._weights import fit_weights_em
from cryoensemble.workflows.optimize import OptimizeSettings, em_weights, make_inner_step
from cryoensemble.workflows.optimize._optimizer import fourier_crop

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_example(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def toy():
    return _load_example("four_atom_toy")


@pytest.fixture(scope="module")
def toy_data(toy):
    return toy.simulate_toy(600, seed=1)


def test_em_weights_match_fit_weights_em():
    rng = np.random.default_rng(0)
    L = rng.normal(0, 3, size=(200, 3)) + np.log([0.6, 0.3, 0.1])
    valid = np.ones(200, np.float32)
    valid[-20:] = 0.0  # padding rows are ignored
    w = np.asarray(em_weights(jnp.asarray(L, jnp.float32), jnp.asarray(valid), 500))
    ref, _, _ = fit_weights_em(L[:-20], tol=1e-10)
    np.testing.assert_allclose(w, ref, atol=2e-4)


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
    settings = OptimizeSettings(step_size=0.7)
    step, init = make_inner_step(cfg, LikelihoodOptions(kind="marginal"), settings)
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
    import jax

    from cryoensemble.inference._likelihood_matrix import batch_log_likelihoods
    from cryoensemble.scattering import GaussianAtoms

    particles, _ = toy_data
    cfg = ImagingConfig(box_size=32, pixel_size=4.0, pad_factor=1.0, half_width=4, chunk_size=64)
    opts = LikelihoodOptions(kind="marginal")
    settings = OptimizeSettings(optimizer="sgd", learning_rate=1.0)
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


def _check_recovery(out, frac):
    # every walker sits on a state (RMSD < 1.5 A), the weights of a state add up to its fraction
    assert max(min(r) for r in out["final_rmsd"]) < 1.5, out
    np.testing.assert_allclose(out["weight_per_state"], frac, atol=0.06)


def test_toy_m_equals_k_recovers_states_and_populations(toy, toy_data):
    particles, labels = toy_data
    out, res = toy.run_toy(3, particles, labels, iterations=6, batch_size=100, inner_steps=4)
    frac = np.bincount(labels, minlength=3) / len(labels)
    assert sorted(out["nearest_state"]) == [0, 1, 2], out
    _check_recovery(out, frac)
    np.testing.assert_allclose(sorted(out["final_long_side"]), toy.STATES, atol=1.5)


def test_toy_extra_walker_shares_an_occupied_state(toy, toy_data):
    particles, labels = toy_data
    out, _ = toy.run_toy(4, particles, labels, iterations=6, batch_size=100, inner_steps=4)
    frac = np.bincount(labels, minlength=3) / len(labels)
    assert set(out["nearest_state"]) == {0, 1, 2}, out  # all states covered, one twice
    _check_recovery(out, frac)


def test_toy_missing_walker_covers_the_most_populated_states(toy, toy_data):
    particles, labels = toy_data
    out, _ = toy.run_toy(
        2, particles, labels, iterations=6, batch_size=100, inner_steps=4, refit=True
    )
    assert sorted(out["nearest_state"]) == [0, 1], out  # populations 0.5 and 0.3
    assert max(min(r) for r in out["final_rmsd"]) < 1.5, out
    # the least populated state's particles (b = 70 A) go mostly to the nearest walker (55 A)
    frac = np.bincount(labels, minlength=3) / len(labels)
    w55 = out["weights"][out["nearest_state"].index(1)]
    assert frac[1] + 0.5 * frac[2] < w55 < frac[1] + frac[2] + 0.03, (w55, frac)


def test_adam_optimizer_also_recovers_the_toy(toy, toy_data):
    particles, labels = toy_data
    out, res = toy.run_toy(
        3,
        particles,
        labels,
        iterations=6,
        batch_size=100,
        inner_steps=4,
        optimizer="adam",
        refit=False,
    )
    assert sorted(out["nearest_state"]) == [0, 1, 2], out
    assert max(min(r) for r in out["final_rmsd"]) < 1.5, out


@pytest.mark.slow
def test_adk_reduced_opens_the_walker(tmp_path):
    """The acceptance experiment at 64 x 64, 2.4 A (400 particles): the opening walker ends
    within 2 A Calpha RMSD of the open state, the weights within 0.05 of the truth."""
    ex = _load_example("adk_open_closed")
    rec = ex.main(["--out", str(tmp_path / "adk"), "--reduced", "--iterations", "30", "--quiet"])
    assert rec["final_rmsd_open"] <= 2.0
    assert rec["final_rmsd_other_closed"] <= 1.0
    assert abs(rec["weight_open"] - 0.7) <= 0.05
    assert abs(rec["weight_open"] - rec["open_fraction"]) <= 0.02
