"""Noise power spectrum (PSD) estimation from the particles' background, for whitening.

Normalisation: PSD(k) = E |F[noise](k)|^2 / n_pix, with F the unnormalised DFT, so white noise of
standard deviation sigma has PSD(k) = sigma^2 at every k and whitening by 1/sqrt(PSD) gives unit
variance white noise (see :class:`~cryoensemble.noise.ColoredGaussianNoise`).

Estimate: each image's background b = (y - mean_bg(y)) * (1 - m), m the disc of radius
``mask_radius_px`` (the particle), has E |F[b]|^2 = (PSD * |F[1 - m]|^2)(k) / n_pix, which for a
slowly varying PSD is PSD(k) * sum(1 - m). We therefore average |F[b]|^2 / sum(1 - m) over the
images and over rings of equal |k| (integer radius in Fourier pixels,
:func:`cryoensemble.ndimage.radial_average`), and spread the radial profile back onto the 2-D
rfft grid. The DC ring, removed by the mean subtraction, takes the value of ring 1.

:func:`estimate_noise_spectra` does the same per particle in one pass over a stack and combines
the rings into one spectrum per optics group and per micrograph (shrunk towards its group) plus a
noise scale per particle (:class:`NoiseSpectra`); see ``docs/likelihood.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from cryoensemble.errors import InputError
from cryoensemble.ndimage import circular_mask, radial_average, radial_index, radial_to_grid
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter

__all__ = [
    "NoiseSpectra",
    "estimate_noise_spectra",
    "estimate_psd",
    "estimate_psd_from_dataset",
    "white_psd",
]


def white_psd(n: int, sigma: float = 1.0) -> Float[Array, "n m"]:
    """The PSD (n, n // 2 + 1) of white noise of standard deviation ``sigma``.

    Arguments:
        n: image side in pixels.
        sigma: standard deviation in image units.
    """
    return jnp.full((n, n // 2 + 1), float(sigma) ** 2, jnp.float32)


@jax.jit
def _power_sums(images, background):
    nb = jnp.sum(background)
    mean = jnp.sum(images * background, axis=(-2, -1), keepdims=True) / nb
    ft = jnp.fft.rfft2((images - mean) * background)
    return jnp.sum(jnp.abs(ft) ** 2, axis=0)


def _background(n: int, mask_radius_px: float | None) -> Array:
    """0/1 float32 weights outside the particle disc (default radius 0.8 n // 2)."""
    r = 0.8 * (n // 2) if mask_radius_px is None else float(mask_radius_px)
    bg = ~circular_mask(n, r)
    if int(bg.sum()) < 0.05 * n * n:
        raise InputError(
            f"the background outside a mask of radius {r:g} px holds only {int(bg.sum())} of "
            f"{n * n} pixels: too few to estimate the noise spectrum; use a smaller mask radius"
        )
    return bg.astype(jnp.float32)


def _psd_from_power(power: Array, n: int) -> Float[Array, "n m"]:
    """Ring-average a mean background power (rfft grid) and spread it back onto the grid."""
    n_rings = int(radial_index(n).max()) + 1
    prof = radial_average(power, n_rings=n_rings)
    prof = prof.at[0].set(prof[1])
    floor = 1e-6 * jnp.maximum(jnp.max(prof), jnp.finfo(jnp.float32).tiny)
    return jnp.maximum(radial_to_grid(prof, n), floor).astype(jnp.float32)


def estimate_psd(
    images: Float[ArrayLike, "*b n n"], mask_radius_px: float | None = None
) -> Float[Array, "n m"]:
    """Radially averaged noise PSD (rfft grid) from the background of ``images``.

    Arguments:
        images: (b, n, n) (or one (n, n)) particle images.
        mask_radius_px: radius in pixels of the disc centred at pixel n // 2 that is excluded
            (the particle); default 0.8 of n // 2.

    Returns:
        (n, n // 2 + 1) PSD in image units squared.
    """
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[0] == 0:
        raise InputError(f"PSD estimation needs images of shape (b, n, n), got {images.shape}")
    n = images.shape[-1]
    bg = _background(n, mask_radius_px)
    power = _power_sums(images, bg) / (images.shape[0] * jnp.sum(bg))
    return _psd_from_power(power, n)


def estimate_psd_from_dataset(
    dataset,
    mask_radius_px: float | None = None,
    n_sample: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
) -> Float[Array, "n m"]:
    """:func:`estimate_psd` from a random sample of particles, read a batch at a time.

    Arguments:
        dataset: a :class:`~cryoensemble.io.ParticleDataset` (``box_size``, ``len()``,
            ``read_images(indices)``).
        mask_radius_px: particle disc radius in pixels (default 0.8 of n // 2).
        n_sample: particles used at most.
        batch_size: particles read at once.
        seed: seed of the random sample.
    """
    n_total = len(dataset)
    if n_total == 0:
        raise InputError(f"{dataset.star_path}: no particles to estimate the noise spectrum from")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n_total, size=min(n_sample, n_total), replace=False))
    n = dataset.box_size
    bg = _background(n, mask_radius_px)
    total = jnp.zeros((n, n // 2 + 1), jnp.float32)
    for start in range(0, len(idx), batch_size):
        images = dataset.read_images(idx[start : start + batch_size])
        total = total + _power_sums(jnp.asarray(images), bg)
    return _psd_from_power(total / (len(idx) * jnp.sum(bg)), n)


# -- per-optics-group and per-micrograph spectra ----------------------------------------------------
class NoiseSpectra(eqx.Module):
    """Noise power spectra estimated from a particle stack: one radial profile per micrograph
    (or per optics group when micrographs are unknown), shrunk towards its optics group, and a
    noise scale per particle (see :func:`estimate_noise_spectra`).

    Particle i's PSD on the rfft grid is ``radial_to_grid(profiles[index[i]] * scale[i])``
    (:meth:`psd`); units are image units squared, the convention of :func:`estimate_psd`.

    Arguments:
        profiles: (s, r) radial PSD of each spectrum (ring i at |k| = i Fourier pixels).
        group_profiles: (g, r) radial PSD of each optics group.
        spectrum_group: (s,) the optics group (row of ``group_profiles``) of each spectrum.
        index: (n,) the spectrum (row of ``profiles``) of each particle.
        scale: (n,) each particle's noise variance relative to its spectrum's.
        weights: (s,) the shrinkage weight n_mic / (n_mic + k) of each spectrum's shape
            (1: its own estimate, 0: its group's).
        box_size: the image side n in pixels.
        shrinkage: k, the prior strength in particles of the shape shrinkage.
    """

    profiles: Float[Array, "s r"]
    group_profiles: Float[Array, "g r"]
    spectrum_group: Int[Array, " s"]
    index: Int[Array, " n"]
    scale: Float[Array, " n"]
    weights: Float[Array, " s"]
    box_size: int = eqx.field(static=True)
    shrinkage: float = eqx.field(static=True)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def radial(self, indices: Int[ArrayLike, " b"]) -> Float[Array, "b r"]:
        """(b, r) radial PSDs of the particles ``indices`` (profile times scale).

        Arguments:
            indices: 0-based particle indices (traceable).
        """
        idx = jnp.asarray(indices)
        return self.profiles[self.index[idx]] * self.scale[idx][:, None]

    def psd(self, indices: Int[ArrayLike, " b"]) -> Float[Array, "b n m"]:
        """(b, n, n // 2 + 1) PSDs of the particles ``indices`` on the rfft grid.

        Arguments:
            indices: 0-based particle indices (traceable).
        """
        return radial_to_grid(self.radial(indices), self.box_size)


@jax.jit
def _ring_powers(images, background, valid):
    """(b, rings) background power per ring, normalised by sum(w^2) (see :func:`estimate_psd`)."""
    w2 = jnp.sum(background**2)
    mean = jnp.sum(images * background, axis=(-2, -1), keepdims=True) / jnp.sum(background)
    power = jnp.abs(jnp.fft.rfft2((images - mean) * background)) ** 2 / w2
    n = images.shape[-1]
    rings = radial_average(power, n_rings=int(radial_index(n).max()) + 1)
    return rings * valid[:, None]


def _labels(values, n: int, what: str) -> np.ndarray:
    """0-based codes (n,) of per-particle labels (None: all in one)."""
    if values is None:
        return np.zeros(n, np.int64)
    values = np.asarray(values).reshape(-1)
    if len(values) != n:
        raise InputError(f"{len(values)} {what} labels for {n} particles")
    return np.unique(values, return_inverse=True)[1].astype(np.int64)


def _ring_counts(n: int) -> np.ndarray:
    """Coefficients of the full n x n FFT grid per ring (for variances by Parseval)."""
    idx = radial_index(n, rfft=False).reshape(-1)
    return np.bincount(idx, minlength=int(radial_index(n).max()) + 1).astype(np.float64)


def _variance(profiles: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Noise variance (mean of the PSD over the full grid, DC excluded) of radial profiles."""
    return (profiles[..., 1:] @ counts[1:]) / counts.sum()


def _accumulate(dataset, background, mic, batch_size, progress):
    """Per-spectrum sums of ring power and of its square, and each particle's background
    variance, in one pass over the stack."""
    n_total = len(dataset)
    n_mic = int(mic.max()) + 1
    counts = _ring_counts(dataset.box_size)
    s1 = np.zeros((n_mic, len(counts)))
    s2 = np.zeros((n_mic, len(counts)))
    var = np.empty(n_total)
    bs = min(int(batch_size), n_total)
    with progress.task("noise spectra", total=n_total, unit="particles") as task:
        for batch in dataset.iter_batches(bs, pad_to=bs):
            rings = np.asarray(_ring_powers(batch.images, background, batch.valid), np.float64)
            k = batch.n_valid
            idx = np.asarray(batch.indices)[:k]
            rings = rings[:k]
            np.add.at(s1, mic[idx], rings)
            np.add.at(s2, mic[idx], rings**2)
            var[idx] = _variance(rings, counts)
            task.advance(k)
    return s1, s2, var


def _shrink_levels(level, n_mic, log_var, mic):
    """Empirical-Bayes shrinkage of log micrograph levels towards their (n_mic-weighted) mean:
    the within-micrograph variance of the particles' log variances over n_mic is the sampling
    variance, the levels' spread in excess of it the prior variance."""
    if len(level) < 3:
        return level
    log_level = np.log(level)
    within = log_var - (np.bincount(mic, log_var, minlength=len(level)) / n_mic)[mic]
    sigma2 = float(np.sum(within**2) / max(len(log_var) - len(level), 1))
    centre = float(np.sum(n_mic * log_level) / n_mic.sum())
    sampling = sigma2 / n_mic
    tau2 = max(float(np.var(log_level)) - float(np.mean(sampling)), 0.0)
    w = tau2 / (tau2 + sampling) if tau2 > 0 else np.zeros_like(sampling)
    return np.exp(centre + w * (log_level - centre))


def _shape_shrinkage(rel, rel_var, n_mic, k):
    """The prior strength k (particles) of the shape shrinkage: given, or estimated by the
    method of moments, k = sum sigma^2 / sum tau^2 over rings (sigma^2 the per-particle
    variance of the relative ring power, tau^2 its excess spread between micrographs)."""
    if k is not None:
        return float(k)
    if rel.shape[0] < 3:
        return 0.0
    sigma2 = rel_var  # (rings,)
    tau2 = np.maximum(np.var(rel, axis=0) - np.mean(sigma2[None] / n_mic[:, None], axis=0), 0)
    return float(np.clip(sigma2.sum() / max(tau2.sum(), 1e-12), 0.0, 1e6))


def _group_spectra(s1, s2, n_mic, var, mic, shrinkage):
    """Profiles (s, r), shape weights (s,) and k of the micrographs of one optics group."""
    group = s1.sum(0) / n_mic.sum()
    group[0] = group[1]
    # floors keep constant (zero-background) images finite
    group = np.maximum(group, 1e-6 * max(float(group.max()), 1e-30))
    level = np.bincount(mic, var, minlength=len(n_mic)) / n_mic / max(float(var.mean()), 1e-30)
    level = np.maximum(level, 1e-6)
    expected = level[:, None] * group[None]  # (s, r)
    rel = s1 / n_mic[:, None] / expected
    ss = np.maximum(s2 - s1**2 / n_mic[:, None], 0.0) / expected**2
    rel_var = ss.sum(0) / max(float(np.sum(n_mic - 1)), 1.0)
    k = _shape_shrinkage(rel[:, 1:], rel_var[1:], n_mic, shrinkage)
    w = n_mic / (n_mic + k)
    shape = 1.0 + w[:, None] * (rel - 1.0)
    level = _shrink_levels(level, n_mic, np.log(np.maximum(var, 1e-30)), mic)
    prof = level[:, None] * group[None] * shape
    prof[:, 0] = prof[:, 1]
    return prof, group, w, k


def _particle_scales(var, expected, profiles, counts, background):
    """Each particle's background variance over its spectrum's, shrunk towards 1 by the excess
    of its spread over the sampling variance of one image's background variance,
    2 (sum w^4 / (sum w^2)^2) n^2 sum_k PSD^2 / (sum_k PSD)^2 (Gaussian noise)."""
    raw = np.log(np.maximum(var, 1e-30) / expected)
    bg = np.asarray(background, np.float64)
    eff = float(np.sum(bg**4) / np.sum(bg**2) ** 2)
    p = profiles[:, 1:]
    c = counts[1:]
    ratio = (p**2 @ c) * counts.sum() / (p @ c) ** 2
    sampling = float(2.0 * eff * np.mean(ratio))
    tau2 = max(float(np.var(raw)) - sampling, 0.0)
    return np.exp(raw * tau2 / (tau2 + sampling))


def estimate_noise_spectra(
    dataset,
    mask_radius_px: float | None = None,
    groups: ArrayLike | Sequence | None = None,
    micrographs: ArrayLike | Sequence | None = None,
    shrinkage: float | None = None,
    batch_size: int = 256,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> NoiseSpectra:
    """Noise spectra per optics group and per micrograph from the particles' backgrounds.

    One pass over the stack (a batch at a time) gives, for each particle, its background ring
    power (outside the disc of ``mask_radius_px``, normalised as in :func:`estimate_psd` so that
    white noise of variance s^2 gives a flat s^2). Then, per optics group:

    * the group profile G(r) is the mean ring power of its particles;
    * a micrograph's level a is its particles' mean background variance over the group's,
      shrunk in log towards the group mean by empirical Bayes (prior variance: the levels'
      spread in excess of their sampling variance);
    * its shape R(r) = (its mean ring power) / (a G(r)) is shrunk towards 1 with weight
      n_mic / (n_mic + k); k = sigma^2 / tau^2 pooled over rings (per-particle sampling
      variance over the excess between-micrograph variance; method of moments), or given;
    * its profile is a G(r) R(r);
    * each particle's scale is its background variance over its micrograph's, shrunk towards 1
      by the same empirical-Bayes rule (the sampling variance of one background's variance is
      computed from the spectrum).

    Without micrograph labels each optics group is one spectrum (weight 1); a micrograph name
    seen in two optics groups gives one spectrum per group. Particles with
    structure outside the mask (neighbours, tails) inflate the estimate; a second pass on the
    residuals after a first fit is not done.

    Arguments:
        dataset: the particles: anything with ``box_size``, ``len()`` and
            ``iter_batches(batch_size, pad_to=...)`` yielding batches with ``images``,
            ``indices`` and ``valid`` (:class:`~cryoensemble.imaging.AbstractParticles`).
        mask_radius_px: radius in pixels of the particle disc (centred at n // 2) left out;
            default 0.8 of n // 2.
        groups: (n,) optics-group label of each particle (None: one group).
        micrographs: (n,) micrograph label of each particle (None: unknown).
        shrinkage: k in particles (None: estimated per group; 0: no shape shrinkage).
        batch_size: particles read at once.
        progress: reports the particles read.
    """
    n_total = len(dataset)
    if n_total == 0:
        raise InputError("no particles to estimate the noise spectra from")
    if shrinkage is not None and not shrinkage >= 0:
        raise InputError(f"shrinkage must be >= 0 particles, got {shrinkage}")
    grp = _labels(groups, n_total, "optics group")
    mic = _labels(micrographs, n_total, "micrograph") if micrographs is not None else grp
    # a micrograph belongs to one group: split the pairs so that each spectrum has one group
    pairs = np.unique(np.stack([grp, mic], 1), axis=0, return_inverse=True)
    spec_group, spec = pairs[0][:, 0], pairs[1].reshape(-1).astype(np.int64)
    n = dataset.box_size
    background = _background(n, mask_radius_px)
    s1, s2, var = _accumulate(dataset, background, spec, batch_size, progress)
    n_spec = np.bincount(spec, minlength=len(spec_group)).astype(np.float64)
    counts = _ring_counts(n)
    profiles = np.zeros_like(s1)
    weights = np.ones(len(spec_group))
    group_profiles, ks = [], []
    for g in range(int(spec_group.max()) + 1):
        rows = np.flatnonzero(spec_group == g)
        members = np.flatnonzero(spec_group[spec] == g)
        local = np.searchsorted(rows, spec[members])
        prof, gp, w, k = _group_spectra(
            s1[rows],
            s2[rows],
            n_spec[rows],
            var[members],
            local,
            0.0 if micrographs is None else shrinkage,
        )
        profiles[rows], weights[rows] = prof, w
        group_profiles.append(gp)
        ks.append(k)
    expected = _variance(profiles, counts)[spec]
    scale = _particle_scales(var, expected, profiles, counts, background)
    return NoiseSpectra(
        profiles=jnp.asarray(profiles, jnp.float32),
        group_profiles=jnp.asarray(np.stack(group_profiles), jnp.float32),
        spectrum_group=jnp.asarray(spec_group, jnp.int32),
        index=jnp.asarray(spec, jnp.int32),
        scale=jnp.asarray(scale, jnp.float32),
        weights=jnp.asarray(weights, jnp.float32),
        box_size=int(n),
        shrinkage=float(np.median(ks)),
    )
