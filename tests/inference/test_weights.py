"""Population weights: EM/MAP, the Gibbs posterior, the held-out check (any L matrix)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.inference import (
    effective_sample_size,
    em_weights,
    fit_weights_em,
    held_out_check,
    sample_posterior_gibbs,
    summarize_samples,
)

CENTRES = np.array([[0.0, 0.0, 0.0], [2.0, 4.0, -2.0], [4.0, 0.0, 0.0]])
SIZES = (5000, 3000, 2000)


def toy_matrix(seed=0):
    """Tang et al. (2023) toy: 3-D points from three unit Gaussians; L = Gaussian log density."""
    rng = np.random.default_rng(seed)
    pts = np.concatenate([rng.normal(size=(k, 3)) + CENTRES[i] for i, k in enumerate(SIZES)])
    d2 = ((pts[:, None, :] - CENTRES[None]) ** 2).sum(-1)
    return -0.5 * d2 - 1.5 * np.log(2 * np.pi)


def test_toy_three_gaussians():
    L = toy_matrix()
    truth = np.array(SIZES) / sum(SIZES)
    w, it, conv = fit_weights_em(L)
    assert conv and it < 1000
    np.testing.assert_allclose(w, truth, atol=0.02)
    s = summarize_samples(sample_posterior_gibbs(jax.random.key(0), L, 1.0, 1500, 300), 0.9)
    np.testing.assert_allclose(s["mean"], truth, atol=0.02)
    assert np.all((s["lower"] <= truth) & (truth <= s["upper"])), (s["lower"], s["upper"])
    assert np.all(s["ess"] > 200)


def test_em_stable_for_extremely_peaked_rows():
    rng = np.random.default_rng(0)
    z = rng.integers(0, 3, 1000)
    L = -1e5 * np.ones((1000, 3))
    L[np.arange(1000), z] = 0.0
    L += rng.normal(size=(1000, 1)) * 1e4  # per-row offsets do not matter
    w, _, conv = fit_weights_em(L)
    assert conv
    np.testing.assert_allclose(w, np.bincount(z, minlength=3) / 1000, atol=1e-7)


def test_map_with_prior_counts_and_exact_posterior_for_hard_assignments():
    counts = np.array([60, 30, 10])
    z = np.repeat(np.arange(3), counts)
    L = np.full((100, 3), -1e4)
    L[np.arange(100), z] = 0.0
    c = np.array([10.0, 0.0, 5.0])
    w, _, _ = fit_weights_em(L, prior_counts=c)
    np.testing.assert_allclose(w, (counts + c) / (100 + c.sum()), atol=1e-8)
    # hard assignments: the posterior is exactly Dirichlet(1 + c + counts)
    alpha = 1.0 + c + counts
    s = sample_posterior_gibbs(jax.random.key(1), L, 1.0 + c, n_samples=4000, burn_in=50)
    np.testing.assert_allclose(s.mean(0), alpha / alpha.sum(), atol=0.005)
    var = alpha * (alpha.sum() - alpha) / (alpha.sum() ** 2 * (alpha.sum() + 1))
    np.testing.assert_allclose(s.var(0), var, rtol=0.15)


def test_held_out_check_reports_gains():
    h = held_out_check(toy_matrix(), fraction=0.2, seed=0)
    assert h["n_validation"] == 2000 and h["n_train"] == 8000
    assert h["validation_gain"] > 0 and h["train_gain"] > 0
    # many near-duplicate structures fitted to few particles: train gain exceeds validation gain
    rng = np.random.default_rng(1)
    L = rng.normal(size=(40, 30)) * 3
    h2 = held_out_check(L, fraction=0.5, seed=0)
    assert h2["train_gain"] > h2["validation_gain"]


def test_ess_of_iid_and_correlated_chains():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(4000, 1))
    assert 3000 < effective_sample_size(iid)[0] < 5000
    ar = np.zeros(4000)
    for i in range(1, 4000):
        ar[i] = 0.9 * ar[i - 1] + rng.normal()
    assert effective_sample_size(ar)[0] < 600


def test_bad_inputs():
    with pytest.raises(InputError, match="non-finite"):
        fit_weights_em(np.array([[0.0, np.nan]]))
    with pytest.raises(InputError, match="non-empty"):
        fit_weights_em(np.zeros((0, 2)))
    with pytest.raises(InputError, match="prior counts"):
        fit_weights_em(np.zeros((3, 2)), prior_counts=[-1, 0])
    with pytest.raises(InputError, match="concentrations"):
        sample_posterior_gibbs(jax.random.key(0), np.zeros((3, 2)), alpha=0.0)
    with pytest.raises(InputError, match="credible level"):
        summarize_samples(np.ones((3, 2)) / 2, level=1.5)


def test_em_weights_match_fit_weights_em():
    rng = np.random.default_rng(0)
    L = rng.normal(0, 3, size=(200, 3)) + np.log([0.6, 0.3, 0.1])
    valid = np.ones(200, np.float32)
    valid[-20:] = 0.0  # padding rows are ignored
    res = em_weights(jnp.asarray(L, jnp.float32), jnp.asarray(valid), 500)
    w = np.exp(np.asarray(res.log_weights))
    ref, _, _ = fit_weights_em(L[:-20], tol=1e-10)
    np.testing.assert_allclose(w, ref, atol=2e-4)
