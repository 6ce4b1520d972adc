"""Noise spectra from particle backgrounds: normalisation (white noise gives a flat sigma^2),
coloured spectra per optics group, per-micrograph levels with shrinkage, per-particle scales, and
whitening."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.imaging import ArrayParticles
from cryoensemble.ndimage import radial_average, radial_index, radial_power_spectrum, radial_to_grid
from cryoensemble.noise import ColoredGaussianNoise, estimate_noise_spectra, estimate_psd
from cryoensemble.optics import CTFParams

N, MASK = 48, 16.0


def _rings(n: int = N) -> np.ndarray:
    return np.arange(int(radial_index(n).max()) + 1)


def _power_law(level: float = 1.0) -> np.ndarray:
    """A radial PSD: power law plus a flat floor (ring r at |k| = r Fourier pixels)."""
    return level * (1.0 + 20.0 / (1.0 + _rings()) ** 1.5)


def _particles(seed: int, profiles: np.ndarray, which: np.ndarray, factors=None) -> np.ndarray:
    """Noise of radial PSD ``profiles[which[i]] * factors[i]`` plus a Gaussian blob (the
    particle, inside the mask) per image."""
    n_img = len(which)
    yy, xx = np.indices((N, N)) - N // 2
    blob = 5.0 * np.exp(-(xx**2 + yy**2) / (2 * 6.0**2))
    white = jax.random.normal(jax.random.key(seed), (n_img, N, N))
    psd = radial_to_grid(jnp.asarray(profiles[which], jnp.float32), N)
    if factors is not None:
        psd = psd * jnp.asarray(factors, jnp.float32)[:, None, None]
    noise = jnp.fft.irfft2(jnp.fft.rfft2(white) * jnp.sqrt(psd), s=(N, N))
    return np.asarray(noise) + blob


def _dataset(images: np.ndarray) -> ArrayParticles:
    return ArrayParticles(images, CTFParams(), 1.0)


def _shells(n: int = N) -> slice:
    return slice(1, n // 2 + 1)  # rings 1 .. Nyquist


@pytest.mark.parametrize("seed", [0, 1])
def test_white_noise_gives_a_flat_sigma_squared(seed):
    sigma = 1.5
    rng = np.random.default_rng(seed)
    images = sigma * rng.standard_normal((300, 32, 32)).astype(np.float32)
    psd = np.asarray(estimate_psd(images, 10.0))
    np.testing.assert_allclose(np.median(psd), sigma**2, rtol=0.02)
    spectra = estimate_noise_spectra(_dataset(images), 10.0, batch_size=64)
    prof = np.asarray(spectra.profiles)[0, _shells(32)]
    np.testing.assert_allclose(prof, sigma**2, rtol=0.08)
    np.testing.assert_allclose(np.median(prof), sigma**2, rtol=0.02)
    # no per-particle variation: the scales are shrunk to (nearly) 1
    np.testing.assert_allclose(np.asarray(spectra.scale), 1.0, atol=0.03)


def test_coloured_spectrum_per_optics_group_within_ten_percent():
    profiles = np.stack([_power_law(1.0), 3.0 * (1.0 + 5.0 * np.exp(-_rings() / 6.0))])
    groups = np.repeat([0, 1], 200)
    images = _particles(3, profiles, groups)
    spectra = estimate_noise_spectra(_dataset(images), MASK, groups=groups, batch_size=100)
    assert np.asarray(spectra.group_profiles).shape == (2, len(_rings()))
    for g in range(2):
        est = np.asarray(spectra.group_profiles)[g, _shells()]
        err = np.abs(est / profiles[g, _shells()] - 1)
        assert np.median(err) < 0.10, (g, np.median(err))
        # each particle gets its own group's spectrum
        i = np.flatnonzero(groups == g)[5]
        np.testing.assert_allclose(
            np.asarray(spectra.psd(np.array([i])))[0],
            radial_to_grid(np.asarray(spectra.radial(np.array([i])))[0], N),
            rtol=1e-6,
        )
    # the two groups differ by much more than the estimation error
    ratio = np.asarray(spectra.group_profiles)[1] / np.asarray(spectra.group_profiles)[0]
    assert np.ptp(ratio[_shells()]) > 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_micrograph_levels_recovered_with_shrinkage(seed):
    n_mic, per = 40, 4  # small micrographs: 4 particles each
    rng = np.random.default_rng(seed)
    levels = np.exp(0.3 * rng.standard_normal(n_mic))  # log-normal micrograph levels
    mic = np.repeat(np.arange(n_mic), per)
    images = _particles(10 + seed, _power_law()[None] * levels[:, None], mic)
    names = np.array([f"mic_{m:03d}.mrc" for m in mic])
    spectra = estimate_noise_spectra(_dataset(images), MASK, micrographs=names, batch_size=64)
    truth = levels[:, None] * _power_law()[None, _shells()]
    shrunk = np.asarray(spectra.profiles)[:, _shells()]
    raw = np.stack(
        [
            np.asarray(radial_average(estimate_psd(images[mic == m], MASK), n_rings=len(_rings())))
            for m in range(n_mic)
        ]
    )[:, _shells()]
    err_shrunk = np.median(np.abs(shrunk / truth - 1), axis=1)
    err_raw = np.median(np.abs(raw / truth - 1), axis=1)
    assert np.median(err_shrunk) < 0.6 * np.median(err_raw), (err_shrunk, err_raw)
    # the levels themselves (variance ratio of the micrographs) within a few percent
    lev = np.asarray(spectra.profiles)[:, 1:].mean(1) / _power_law()[1:].mean()
    np.testing.assert_allclose(np.log(lev), np.log(levels), atol=0.12)
    # shrinkage weight n / (n + k) with an estimated, finite k
    assert 0 < spectra.shrinkage < 1e5
    np.testing.assert_allclose(np.asarray(spectra.weights), per / (per + spectra.shrinkage))
    # k = 0: no shape shrinkage, each micrograph its own estimate
    own = estimate_noise_spectra(_dataset(images), MASK, micrographs=mic, shrinkage=0.0)
    np.testing.assert_allclose(np.asarray(own.weights), 1.0)


def test_particle_scales_follow_the_particles_noise_level():
    n_img = 300
    factors = np.exp(0.4 * np.random.default_rng(4).standard_normal(n_img))
    images = _particles(5, _power_law()[None], np.zeros(n_img, int), factors)
    spectra = estimate_noise_spectra(_dataset(images), MASK, batch_size=128)
    est = np.log(np.asarray(spectra.scale))
    true = np.log(factors / np.exp(np.mean(np.log(factors))))
    assert np.corrcoef(est, true)[0, 1] > 0.95
    assert np.median(np.abs(est - np.mean(est) - (true - np.mean(true)))) < 0.1


def test_whitening_with_the_spectrum_gives_unit_white_noise():
    true = radial_to_grid(jnp.asarray(_power_law(2.0), jnp.float32), N)
    noise = ColoredGaussianNoise(true).sample(jax.random.key(6), jnp.zeros((200, N, N)))
    flat = np.asarray(radial_power_spectrum(ColoredGaussianNoise(true).whiten(noise)))
    np.testing.assert_allclose(flat[1:], 1.0, rtol=0.1)
    np.testing.assert_allclose(float(jnp.var(ColoredGaussianNoise(true).whiten(noise))), 1.0, 0.02)
    # the same with the estimated per-particle spectrum (background only: particles add nothing)
    spectra = estimate_noise_spectra(_dataset(np.asarray(noise)), MASK)
    psds = spectra.psd(np.arange(200))
    white = jax.vmap(lambda y, p: ColoredGaussianNoise(p).whiten(y))(noise, psds)
    flat = np.asarray(radial_power_spectrum(white))
    assert np.median(np.abs(flat[1 : N // 2 + 1] - 1.0)) < 0.1
    np.testing.assert_allclose(float(jnp.var(white)), 1.0, rtol=0.1)


def test_bad_inputs():
    images = np.zeros((4, 16, 16), np.float32) + np.random.default_rng(0).normal(size=(4, 16, 16))
    with pytest.raises(InputError, match="too few"):
        estimate_noise_spectra(_dataset(images), 12.0)
    with pytest.raises(InputError, match="micrograph labels"):
        estimate_noise_spectra(_dataset(images), 4.0, micrographs=["a", "b"])
    with pytest.raises(InputError, match="shrinkage"):
        estimate_noise_spectra(_dataset(images), 4.0, shrinkage=-1.0)
