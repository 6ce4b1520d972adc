"""Single-image likelihoods against direct float64 evaluations; noise PSD estimation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln

from cryoensemble.inference import log_likelihood_colored, log_likelihood_marginal
from cryoensemble.noise import WhiteGaussianNoise, estimate_psd, white_psd


def _images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n)).astype(np.float32)
    y = (0.7 * x + 0.3 + rng.normal(size=(n, n))).astype(np.float32)
    return x, y


def _disc(n, r):
    c = np.arange(n) - n // 2
    return ((c[:, None] ** 2 + c[None, :] ** 2) <= r**2).astype(np.float32)


def _direct_marginal(x, y, m, exact=True):
    sel = m.astype(bool)
    xs, ys = x[sel].astype(np.float64), y[sel].astype(np.float64)
    n = xs.size
    c = np.stack([xs, np.ones(n)], axis=1)
    beta, *_ = np.linalg.lstsq(c, ys, rcond=None)
    rss = np.sum((ys - c @ beta) ** 2)
    if not exact:
        return -0.5 * n * np.log(rss)
    k = n - 2
    det = np.linalg.det(c.T @ c)
    return (
        gammaln(k / 2) - np.log(2) - k / 2 * np.log(np.pi) - k / 2 * np.log(rss) - 0.5 * np.log(det)
    )


@pytest.mark.parametrize("masked", [False, True])
def test_white_matches_direct(masked):
    x, y = _images()
    m = _disc(16, 6) if masked else np.ones((16, 16), np.float32)
    sigma = 1.3
    got = WhiteGaussianNoise(sigma).log_likelihood(
        jnp.asarray(y), jnp.asarray(x), m if masked else None
    )
    sel = m.astype(bool)
    r = (y - x).astype(np.float64)[sel]
    want = -0.5 * np.sum(r**2) / sigma**2 - 0.5 * r.size * np.log(2 * np.pi * sigma**2)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("exact", [True, False])
def test_marginal_matches_direct(masked, exact):
    x, y = _images()
    m = _disc(16, 6) if masked else np.ones((16, 16), np.float32)
    got = log_likelihood_marginal(jnp.asarray(x), jnp.asarray(y), m if masked else None, exact)
    np.testing.assert_allclose(float(got), _direct_marginal(x, y, m, exact), rtol=1e-5)


def test_marginal_formula_equals_numerical_integral():
    """log of  int ds db dsigma/sigma  N(y | s x + b, sigma^2 I), by quadrature (N = 6 pixels)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=6)
    y = 0.8 * x - 0.2 + 0.5 * rng.normal(size=6)
    want = _direct_marginal(x[None], y[None], np.ones((1, 6)))
    got = float(log_likelihood_marginal(jnp.asarray(x[None]), jnp.asarray(y[None])))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # numerical integral: s, b on a grid, sigma on a log grid
    c = np.stack([x, np.ones(6)], 1)
    beta, *_ = np.linalg.lstsq(c, y, rcond=None)
    s = beta[0] + np.linspace(-8, 8, 401)
    b = beta[1] + np.linspace(-8, 8, 401)
    logsig = np.linspace(np.log(1e-3), np.log(1e3), 1200)
    S, B = np.meshgrid(s, b, indexing="ij")
    r2 = ((y[None, None, :] - S[..., None] * x - B[..., None]) ** 2).sum(-1)
    total = []
    for ls in logsig:
        sig2 = np.exp(2 * ls)
        logp = -0.5 * r2 / sig2 - 3 * np.log(2 * np.pi * sig2)
        inner = np.trapezoid(np.trapezoid(np.exp(logp), b, axis=1), s)
        total.append(inner)  # d sigma / sigma = d log sigma
    num = np.log(np.trapezoid(np.array(total), logsig))
    np.testing.assert_allclose(got, num, rtol=2e-3)


@pytest.mark.parametrize("masked", [False, True])
def test_marginal_invariant_to_affine_intensity_changes(masked):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(16, 16)).astype(np.float32)
    models = [rng.normal(size=(16, 16)).astype(np.float32) for _ in range(3)]
    m = _disc(16, 6) if masked else None
    n = 16 * 16 if m is None else m.sum()
    for a, c in [(3.5, -2.0), (-0.01, 100.0), (1e3, 1e3)]:
        y2 = a * y + c
        d = [
            float(log_likelihood_marginal(jnp.asarray(mi), jnp.asarray(y2), m))
            - float(log_likelihood_marginal(jnp.asarray(mi), jnp.asarray(y), m))
            for mi in models
        ]
        # the same shift for every structure, equal to -(N - 2) log|a|
        np.testing.assert_allclose(d, -(n - 2) * np.log(abs(a)), rtol=2e-4, atol=2e-2)
    # scaling/offsetting the model image does not change the residual either
    l1 = float(log_likelihood_marginal(jnp.asarray(models[0]), jnp.asarray(y), m, exact=False))
    l2 = float(
        log_likelihood_marginal(jnp.asarray(-4 * models[0] + 7), jnp.asarray(y), m, exact=False)
    )
    np.testing.assert_allclose(l1, l2, rtol=1e-5)


def test_colored_matches_direct_whitening():
    n = 16
    x, y = _images(n)
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    psd = (1.0 + 20 * np.exp(-(kx**2 + ky**2) / 0.01)).astype(np.float32)

    def whiten64(im):
        return np.fft.irfft2(np.fft.rfft2(im.astype(np.float64)) / np.sqrt(psd), s=(n, n))

    xw, yw = whiten64(x), whiten64(y)
    got = log_likelihood_colored(jnp.asarray(x), jnp.asarray(y), jnp.asarray(psd))
    want = _direct_marginal(xw, yw, np.ones((n, n)))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    got_w = log_likelihood_colored(jnp.asarray(x), jnp.asarray(y), jnp.asarray(psd), marginal=False)
    r = (yw - xw).ravel()
    want_w = -0.5 * r @ r - 0.5 * r.size * np.log(2 * np.pi)
    np.testing.assert_allclose(float(got_w), want_w, rtol=1e-5)
    # white PSD sigma^2: coloured-white equals white with sigma, up to the Jacobian n^2 log sigma
    sigma = 2.0
    a = log_likelihood_colored(jnp.asarray(x), jnp.asarray(y), white_psd(n, sigma), marginal=False)
    b = WhiteGaussianNoise(sigma).log_likelihood(jnp.asarray(y), jnp.asarray(x))
    np.testing.assert_allclose(float(a) - n * n * np.log(sigma), float(b), rtol=1e-5)


def test_psd_estimate_white_and_colored():
    n, b = 64, 200
    key = jax.random.key(0)
    noise = 1.7 * jax.random.normal(key, (b, n, n))
    psd = np.asarray(estimate_psd(noise, mask_radius_px=20))
    assert psd.shape == (n, n // 2 + 1)
    np.testing.assert_allclose(np.median(psd), 1.7**2, rtol=0.03)
    # coloured: low-pass-filtered noise; the estimate follows the true spectrum
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    true = 1.0 + 9.0 * np.exp(-(kx**2 + ky**2) / (2 * 0.08**2))
    col = np.fft.irfft2(np.fft.rfft2(np.asarray(noise) / 1.7) * np.sqrt(true), s=(n, n))
    est = np.asarray(estimate_psd(col, mask_radius_px=20))
    ring = np.rint(np.sqrt((ky * n) ** 2 + (kx * n) ** 2))
    for r in [3, 8, 16, 30]:
        sel = ring == r
        np.testing.assert_allclose(est[sel].mean(), true[sel].mean(), rtol=0.15)
