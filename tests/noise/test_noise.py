"""White Gaussian noise at an SNR and Poisson shot noise from a dose."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.ndimage import circular_mask
from cryoensemble.noise import (
    add_gaussian_noise,
    expected_counts,
    poisson_images,
    signal_variance,
    snr_noise_sigma,
)


def blobs(b=6, n=48, seed=0):
    """Clean test images: Gaussian blobs of different amplitudes and widths near the centre."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((n, n)) - n // 2
    out = []
    for _ in range(b):
        cx, cy = rng.uniform(-4, 4, 2)
        width = rng.uniform(3, 8)
        out.append(
            rng.uniform(0.5, 3.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
        )
    return jnp.asarray(np.stack(out), jnp.float32)


def test_circular_mask_is_centred_at_n_over_2():
    for n in (16, 17):
        mask = np.asarray(circular_mask(n, 3))
        assert mask[n // 2, n // 2] and mask[n // 2, n // 2 + 3] and not mask[n // 2, n // 2 + 4]
        assert mask.sum() == 29  # lattice points with x^2 + y^2 <= 9


def test_signal_variance_inside_mask():
    clean = blobs()
    mask = np.asarray(circular_mask(48, 20))
    expected = [np.var(np.asarray(img)[mask]) for img in clean]
    np.testing.assert_allclose(signal_variance(clean, 20), expected, rtol=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
def test_measured_snr_matches_request(per_image):
    clean = blobs()
    snr, radius = 0.1, 20
    sigma = snr_noise_sigma(clean, snr, radius, per_image=per_image)
    assert sigma.shape == (6,) and sigma.dtype == jnp.float32
    var = np.asarray(signal_variance(clean, radius))
    if per_image:
        np.testing.assert_allclose(var / np.asarray(sigma) ** 2, snr, rtol=1e-5)
    else:
        np.testing.assert_allclose(sigma, sigma[0])
        np.testing.assert_allclose(var.mean() / float(sigma[0]) ** 2, snr, rtol=1e-5)
    # measure: noise variance from many noisy copies
    key = jax.random.key(3)
    reps = jnp.broadcast_to(clean, (50,) + clean.shape)
    noisy = add_gaussian_noise(key, reps, jnp.broadcast_to(sigma, (50, 6)))
    noise = np.asarray(noisy - reps)
    measured_sigma2 = noise.var(axis=(0, 2, 3))
    measured_snr = (var / measured_sigma2) if per_image else var.mean() / measured_sigma2.mean()
    np.testing.assert_allclose(measured_snr, snr, rtol=0.03)


def test_gaussian_noise_is_deterministic_and_accepts_scalar_sigma():
    clean = blobs(2)
    key = jax.random.key(11)
    a = add_gaussian_noise(key, clean, 0.5)
    np.testing.assert_array_equal(a, add_gaussian_noise(key, clean, 0.5))
    assert not np.array_equal(a, add_gaussian_noise(jax.random.key(12), clean, 0.5))
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(np.std(np.asarray(a - clean)), 0.5, rtol=0.05)
    jitted = jax.jit(lambda k, c: add_gaussian_noise(k, c, snr_noise_sigma(c, 0.5, 20)))
    np.testing.assert_array_equal(jitted(key, clean), jitted(key, clean))


def test_snr_rejects_bad_parameters():
    with pytest.raises(InputError):
        snr_noise_sigma(blobs(2), 0.0, 10)
    with pytest.raises(InputError):
        snr_noise_sigma(blobs(2), 0.1, -1)


def test_poisson_mean_and_variance():
    n, draws, dose, pixel = 24, 3000, 40.0, 1.1
    yy, xx = np.indices((n, n)) - n // 2
    c = jnp.asarray(0.08 * np.exp(-(xx**2 + yy**2) / 30.0) - 0.02, jnp.float32)
    d = dose * pixel**2
    np.testing.assert_allclose(
        expected_counts(c, dose, pixel), d * (1 - 2 * np.asarray(c)), rtol=1e-6
    )
    images = poisson_images(jax.random.key(0), jnp.broadcast_to(c, (draws, n, n)), dose, pixel)
    assert images.dtype == jnp.float32
    images = np.asarray(images, np.float64)
    mean, var = images.mean(0), images.var(0)
    expected_var = (1 - 2 * np.asarray(c)) / (4 * d)
    # standard errors per pixel: sqrt(var / draws) for the mean, sqrt(2 / draws) ~ 2.6% for var
    np.testing.assert_allclose(mean, c, atol=5 * np.sqrt(expected_var.max() / draws))
    np.testing.assert_allclose(var, expected_var, rtol=0.12)
    np.testing.assert_allclose(var.mean(), expected_var.mean(), rtol=0.01)


def test_poisson_is_deterministic_clipped_and_batched():
    c = jnp.full((3, 8, 8), 0.1, jnp.float32).at[0, 0, 0].set(0.9)  # expectation would be < 0 there
    key = jax.random.key(5)
    a = poisson_images(key, c, 20.0, 1.0)
    np.testing.assert_array_equal(a, poisson_images(key, c, 20.0, 1.0))
    assert a.shape == (3, 8, 8)
    assert float(expected_counts(c, 20.0, 1.0)[0, 0, 0]) == 0.0
    # zero expected counts -> zero counts -> image value D / (2 D) = 1/2
    assert float(a[0, 0, 0]) == pytest.approx(0.5)
    with pytest.raises(InputError):
        poisson_images(key, c, 0.0, 1.0)
