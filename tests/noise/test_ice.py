"""The amorphous-ice background: the spectrum formula and the sampled field's spectrum and level."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.ndimage import radial_power_spectrum
from cryoensemble.noise import ice_power_spectrum, ice_psd, sample_ice

# Parkhurst et al. (2024), written out independently of the module's constants
A1, A2, S1, S2, M = 0.199, 0.801, 0.731, 0.081, 1 / 2.88


def _reference(k):
    k = np.asarray(k, np.float64)
    return A1 * np.exp(-(k**2) / (2 * S1**2)) + A2 * np.exp(-((k - M) ** 2) / (2 * S2**2))


def test_ice_power_spectrum_formula():
    k = np.linspace(0.0, 1.0, 201)
    np.testing.assert_allclose(ice_power_spectrum(k), _reference(k), rtol=1e-6)
    # the water peak at 2.88 A dominates the low-frequency term
    assert int(np.argmax(np.asarray(ice_power_spectrum(k)))) == int(np.argmin(np.abs(k - M)))
    assert float(ice_power_spectrum(0.0)) == pytest.approx(A1 + A2 * np.exp(-(M**2) / (2 * S2**2)))


def _expected_ring_power(n: int, pixel_size: float, std: float) -> np.ndarray:
    """std^2 P(k) / mean_full_grid(P), ring-averaged on the rfft grid (numpy only)."""
    f = np.fft.fftfreq(n, d=pixel_size)
    full = _reference(np.hypot(f[:, None], f[None, :]))
    fx = np.fft.rfftfreq(n, d=pixel_size)
    k = np.hypot(f[:, None], fx[None, :])
    psd = std**2 * _reference(k) / full.mean()
    ring = np.rint(k * n * pixel_size).astype(int)
    keep = ring <= n // 2
    sums = np.bincount(ring[keep], weights=psd[keep], minlength=n // 2 + 1)
    return sums / np.bincount(ring[keep], minlength=n // 2 + 1)


@pytest.mark.parametrize("pixel_size", [1.0, 1.2])
def test_sampled_ice_has_the_spectrum_and_the_std(pixel_size):
    n, std = 64, 2.5
    fields = np.asarray(sample_ice(jax.random.key(3), (600, n, n), pixel_size, std))
    assert fields.shape == (600, n, n) and fields.dtype == np.float32
    measured = np.asarray(radial_power_spectrum(fields), np.float64)
    expected = _expected_ring_power(n, pixel_size, std)
    ratio = measured / expected
    # within 5 % per shell on average (ring 0, the mean, is one coefficient per image)
    assert np.mean(np.abs(ratio[1:] - 1)) < 0.05, ratio
    assert np.max(np.abs(ratio[1:] - 1)) < 0.15, ratio
    assert fields.std() == pytest.approx(std, rel=0.03)
    # the 2.88 A peak is where the sampled power is highest
    peak = int(np.argmax(measured))
    assert abs(peak / (n * pixel_size) - M) < 1.5 / (n * pixel_size)


def test_ice_psd_is_normalised_to_the_variance():
    for n, px in [(32, 4.0), (48, 1.5), (64, 1.2)]:
        full = np.asarray(ice_psd(n, px, std=0.7, rfft=False))
        assert full.shape == (n, n)
        assert full.mean() == pytest.approx(0.49, rel=1e-5)  # Parseval: per-pixel variance
        half = np.asarray(ice_psd(n, px, std=0.7))
        np.testing.assert_allclose(half, full[:, : n // 2 + 1], rtol=1e-6)
    with pytest.raises(InputError):
        ice_psd(32, -1.0)
