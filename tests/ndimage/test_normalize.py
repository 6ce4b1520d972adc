"""RELION-style background normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.ndimage import background_statistics, normalize_background


def _outside(n: int, radius: float) -> np.ndarray:
    c = np.arange(n) - n // 2
    return np.hypot(c[:, None], c[None, :]) > radius


def test_background_to_mean_zero_std_one():
    rng = np.random.default_rng(0)
    n, r = 40, 15.0
    images = 3.0 + 0.5 * rng.normal(size=(6, n, n)) * rng.uniform(1, 4, (6, 1, 1))
    images[:, n // 2 - 5 : n // 2 + 5, n // 2 - 5 : n // 2 + 5] += 10.0  # a "particle"
    out = np.asarray(normalize_background(images.astype(np.float32), r), np.float64)
    bg = _outside(n, r)
    np.testing.assert_allclose(out[:, bg].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:, bg].std(axis=1), 1.0, rtol=1e-5)
    # an affine map per image: the particle keeps its contrast relative to the background
    mean, std = (np.asarray(x, np.float64) for x in background_statistics(images, r))
    np.testing.assert_allclose(mean, images[:, bg].mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(std, images[:, bg].std(axis=1), rtol=1e-4)
    expected = (images - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_reference_statistics_and_constant_background():
    rng = np.random.default_rng(1)
    n, r = 32, 10.0
    noisy = rng.normal(2.0, 3.0, size=(3, n, n)).astype(np.float32)
    clean = np.zeros((3, n, n), np.float32)
    out = np.asarray(normalize_background(clean, r, reference=noisy))
    bg = _outside(n, r)
    mean, std = noisy[:, bg].mean(axis=1), noisy[:, bg].std(axis=1)
    np.testing.assert_allclose(out, np.broadcast_to((-mean / std)[:, None, None], out.shape), 1e-4)
    flat = np.full((n, n), 5.0, np.float32)  # std 0: only shifted, no division by zero
    np.testing.assert_array_equal(np.asarray(normalize_background(flat, r)), np.zeros((n, n)))
    with pytest.raises(InputError, match="background"):
        normalize_background(flat, 3 * n)
