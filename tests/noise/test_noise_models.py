"""Noise models as types: sample, then log_likelihood, against independent formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from cryoensemble.errors import InputError
from cryoensemble.ndimage import circular_mask, radial_power_spectrum
from cryoensemble.noise import (
    AbstractNoiseModel,
    ColoredGaussianNoise,
    PoissonNoise,
    WhiteGaussianNoise,
    estimate_psd,
    white_psd,
)


def _clean(b=4, n=24, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((n, n)) - n // 2
    amp = rng.uniform(0.5, 2.0, (b, 1, 1))
    return jnp.asarray(amp * np.exp(-(xx**2 + yy**2) / 20.0), jnp.float32)


def test_the_abstract_model_cannot_be_instantiated():
    with pytest.raises(TypeError):
        AbstractNoiseModel()


@pytest.mark.parametrize("masked", [False, True])
def test_white_log_likelihood_equals_numpy_formula(masked):
    clean = _clean()
    sigma = np.array([0.3, 0.5, 0.7, 1.1], np.float32)
    model = WhiteGaussianNoise(sigma)
    images = model.sample(jax.random.key(0), clean)
    assert images.shape == clean.shape and images.dtype == jnp.float32
    mask = np.asarray(circular_mask(24, 8), np.float32) if masked else np.ones((24, 24))
    got = np.asarray(model.log_likelihood(images, clean, mask if masked else None))
    assert got.shape == (4,)
    r = (np.asarray(images, np.float64) - np.asarray(clean, np.float64)) * np.sqrt(mask)
    n_pix = mask.sum()
    s2 = sigma.astype(np.float64) ** 2
    want = -0.5 * (r**2).sum(axis=(1, 2)) / s2 - 0.5 * n_pix * np.log(2 * np.pi * s2)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # and the draws have the requested standard deviations
    residual = np.asarray(images - clean)
    np.testing.assert_allclose(residual.std(axis=(1, 2)), sigma, rtol=0.15)


def test_white_noise_rejects_a_non_positive_sigma():
    with pytest.raises(InputError, match="sigma"):
        WhiteGaussianNoise(0.0)


def test_colored_with_a_flat_psd_equals_white():
    n, sigma = 24, 0.8
    clean = _clean(n=n)
    images = WhiteGaussianNoise(sigma).sample(jax.random.key(1), clean)
    white = WhiteGaussianNoise(sigma)
    colored = ColoredGaussianNoise(white_psd(n, sigma))
    np.testing.assert_allclose(colored.whiten(images), white.whiten(images), rtol=1e-5, atol=1e-5)
    mask = circular_mask(n, 9)
    lw = np.asarray(white.log_likelihood(images, clean, mask))
    lc = np.asarray(colored.log_likelihood(images, clean, mask))
    # the coloured likelihood leaves out the whitening Jacobian, N log sigma (N pixels used)
    n_pix = float(np.asarray(mask).sum())
    np.testing.assert_allclose(lc - n_pix * np.log(sigma), lw, rtol=1e-5)


def test_colored_samples_have_the_requested_spectrum():
    n = 48
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    psd = jnp.asarray(0.5 + 4.0 * np.exp(-(kx**2 + ky**2) / (2 * 0.1**2)), jnp.float32)
    model = ColoredGaussianNoise(psd)
    noise = model.sample(jax.random.key(2), jnp.zeros((200, n, n), jnp.float32))
    est = np.asarray(estimate_psd(noise, mask_radius_px=10))
    ring = np.rint(np.hypot(ky * n, kx * n))
    for r in (2, 6, 12, 20):
        sel = ring == r
        np.testing.assert_allclose(est[sel].mean(), np.asarray(psd)[sel].mean(), rtol=0.1)
    # whitened noise is white with unit variance
    flat = np.asarray(radial_power_spectrum(model.whiten(noise)))
    np.testing.assert_allclose(flat[1:], 1.0, rtol=0.1)
    with pytest.raises(InputError, match="rfft grid"):
        ColoredGaussianNoise(jnp.ones((8, 8)))


def test_poisson_model_mean_variance_and_log_likelihood():
    n, draws, dose, pixel = 16, 4000, 30.0, 1.2
    yy, xx = np.indices((n, n)) - n // 2
    c = jnp.asarray(0.06 * np.exp(-(xx**2 + yy**2) / 20.0) - 0.01, jnp.float32)
    model = PoissonNoise(dose, pixel)
    images = np.asarray(model.sample(jax.random.key(3), jnp.broadcast_to(c, (draws, n, n))))
    d = dose * pixel**2
    expected_var = (1 - 2 * np.asarray(c, np.float64)) / (4 * d)
    np.testing.assert_allclose(images.mean(0), c, atol=5 * np.sqrt(expected_var.max() / draws))
    np.testing.assert_allclose(images.var(0).mean(), expected_var.mean(), rtol=0.02)
    got = np.asarray(model.log_likelihood(jnp.asarray(images[:3]), c))
    counts = np.rint(d * (1 - 2 * images[:3].astype(np.float64)))
    want = stats.poisson.logpmf(counts, d * (1 - 2 * np.asarray(c, np.float64))).sum(axis=(1, 2))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    with pytest.raises(InputError):
        PoissonNoise(0.0, 1.0)
