"""ndimage: Fourier cropping, low-pass filters, masks, radial averages and power spectra."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.ndimage import (
    circular_mask,
    fourier_crop,
    frequency_grid,
    frequency_radius,
    lowpass,
    radial_average,
    radial_index,
    radial_power_spectrum,
    radial_to_grid,
)


def _band_limited(positions: np.ndarray) -> np.ndarray:
    """A smooth periodic function of (u, v) in units of the image side, frequencies < 8."""
    u, v = positions
    return np.cos(2 * np.pi * (3 * u + 2 * v) + 0.3) + 0.5 * np.sin(2 * np.pi * (-4 * u + 7 * v))


def _sampled(n: int) -> np.ndarray:
    """The band-limited function on an n x n grid, pixel j centred at (j - n // 2) / n."""
    c = (np.arange(n) - n // 2) / n
    v, u = np.meshgrid(c, c, indexing="ij")
    return _band_limited(np.stack([u, v])).astype(np.float32)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_fourier_crop_of_a_band_limited_image_samples_it_on_the_coarse_grid(size):
    fine = _sampled(64)
    got = np.asarray(fourier_crop(jnp.asarray(fine), size))
    assert got.shape == (size, size) and got.dtype == np.float32
    np.testing.assert_allclose(got, _sampled(size), atol=1e-4)


def test_fourier_crop_scales_white_noise_variance():
    n, size, sigma = 64, 32, 1.7
    noise = sigma * jax.random.normal(jax.random.key(0), (40, n, n))
    cropped = np.asarray(fourier_crop(noise, size), np.float64)
    np.testing.assert_allclose(cropped.var(), sigma**2 * (size / n) ** 2, rtol=0.03)


def test_fourier_crop_rejects_odd_or_too_large_sizes():
    with pytest.raises(InputError):
        fourier_crop(jnp.zeros((16, 16)), 9)
    with pytest.raises(InputError):
        fourier_crop(jnp.zeros((16, 16)), 18)


def test_lowpass_keeps_a_constant_and_kills_a_nyquist_checkerboard():
    n = 32
    const = jnp.full((2, n, n), 3.5, jnp.float32)
    np.testing.assert_allclose(lowpass(const, 1.5, 6.0), const, rtol=1e-5)
    i = np.arange(n)
    board = jnp.asarray((-1.0) ** (i[:, None] + i[None, :]), jnp.float32)
    assert float(jnp.max(jnp.abs(lowpass(board, 1.5, 6.0)))) < 1e-5
    volume = jnp.full((n, n, n), -2.0, jnp.float32)
    np.testing.assert_allclose(lowpass(volume, 1.5, 6.0, ndim=3), volume, rtol=1e-5)
    with pytest.raises(InputError):
        lowpass(const, 1.5, 0.0)


def test_circular_mask_area_is_pi_r_squared():
    mask = np.asarray(circular_mask(256, 100.0))
    assert mask.dtype == bool and mask[128, 128] and not mask[0, 0]
    np.testing.assert_allclose(mask.sum(), np.pi * 100.0**2, rtol=0.005)
    assert np.asarray(circular_mask(17)).sum() == np.asarray(circular_mask(17, 8)).sum()


def test_frequency_grid_layouts():
    kx, ky = frequency_grid(8, 2.0)
    assert kx.shape == ky.shape == (8, 5)
    np.testing.assert_allclose(kx[0], np.fft.rfftfreq(8, 2.0))
    np.testing.assert_allclose(ky[:, 0], np.fft.fftfreq(8, 2.0))
    kx, ky = frequency_grid(8, 2.0, rfft=False)
    assert kx.shape == (8, 8)
    np.testing.assert_allclose(frequency_radius(8, 2.0, rfft=False), np.hypot(kx, ky))


def test_radial_power_spectrum_of_white_noise_is_flat():
    n, sigma = 64, 1.3
    images = sigma * jax.random.normal(jax.random.key(1), (60, n, n))
    spectrum = np.asarray(radial_power_spectrum(images))
    assert spectrum.shape == (n // 2 + 1,)
    np.testing.assert_allclose(spectrum[4:], sigma**2, rtol=0.1)
    np.testing.assert_allclose(spectrum[1:].mean(), sigma**2, rtol=0.02)


@pytest.mark.parametrize("rfft", [True, False])
def test_radial_average_inverts_radial_to_grid(rfft):
    n = 32
    n_rings = int(radial_index(n, rfft).max()) + 1
    profile = jnp.asarray(np.random.default_rng(0).normal(size=(3, n_rings)), jnp.float32)
    grid = radial_to_grid(profile, n, rfft)
    assert grid.shape == (3, n, n // 2 + 1 if rfft else n)
    np.testing.assert_allclose(radial_average(grid, rfft, n_rings), profile, rtol=1e-5, atol=1e-6)
    # the default stops at Nyquist
    np.testing.assert_allclose(radial_average(grid, rfft), profile[:, : n // 2 + 1], rtol=1e-5)
