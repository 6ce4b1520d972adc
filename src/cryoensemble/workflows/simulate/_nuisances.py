"""The real-data nuisances of a simulated dataset, each off by default (``docs/simulate.md``,
"Real-data nuisances"): what real particle stacks have and a clean simulation lacks.

* per particle, drawn up front into the particle table (so that the STAR file alone regenerates
  the images): pose errors (the STAR file gets the perturbed poses, the true ones go into
  ``cryoensembleTrue*`` columns and are the ones imaged), a log-normal amplitude
  (``cryoensembleAmplitude``) and a per-micrograph log-normal noise level
  (``rlnMicrographName``, ``cryoensembleNoiseScale``);
* per image, while simulating: the envelope B-factor and the amplitude on the particle signal,
  the CTF-modulated amorphous-ice background (:func:`cryoensemble.noise.sample_ice`), and
  RELION-style contrast inversion and background normalisation of the final images.

Random draws: ``numpy.random.default_rng([seed, stream])``, one stream per nuisance (1 pose
errors, 2 amplitudes, 3 micrograph noise levels), apart from the parameter draws of
``_sampling.py`` and from each other, so that a dataset with every nuisance off is bit for bit the
one without them and turning one nuisance on leaves the others' values unchanged. The ice uses the
JAX keys ``fold_in(fold_in(key(seed), 2), batch index)``.

No-CTF datasets: the STAR file describes an identity CTF (:func:`identity_ctf`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, ArrayLike, Float

from cryoensemble.ndimage import frequency_grid, frequency_radius
from cryoensemble.noise import ice_psd
from cryoensemble.optics import CTFParams, ctf
from cryoensemble.workflows.simulate._config import SimulateConfig

__all__ = [
    "AMPLITUDE_COLUMN",
    "IDENTITY_CTF",
    "MICROGRAPH_COLUMN",
    "NOISE_SCALE_COLUMN",
    "TRUE_POSE_COLUMNS",
    "add_particle_nuisances",
    "ctf_modulate",
    "envelope",
    "identity_ctf",
    "imaged_particles",
    "modulated_ice_variance",
]

_POSE_COLUMNS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst")
#: STAR column -> ground-truth column of the true value (when pose errors are on).
TRUE_POSE_COLUMNS = {c: "cryoensembleTrue" + c[3:] for c in _POSE_COLUMNS}
AMPLITUDE_COLUMN = "cryoensembleAmplitude"
NOISE_SCALE_COLUMN = "cryoensembleNoiseScale"
MICROGRAPH_COLUMN = "rlnMicrographName"

_Q0 = 0.1
#: The CTF parameters written for data simulated without CTF: no defocus, no spherical aberration,
#: and a phase shift that cancels the amplitude-contrast phase, so that RELION's
#: CTF = -sin(-phase_shift - asin(Q0)) = -sin(-90 deg) = 1 at every frequency. (RELION 3.1 reads a
#: missing defocus as 0 but still applies Cs and Q0 from the optics table, and refuses a CTF with
#: defocus, Cs and Q0 all zero, so leaving the columns out would not do.)
IDENTITY_CTF = {
    "rlnDefocusU": 0.0,
    "rlnDefocusV": 0.0,
    "rlnDefocusAngle": 0.0,
    "rlnPhaseShift": 90.0 - math.degrees(math.asin(_Q0)),
    "rlnCtfBfactor": 0.0,
    "rlnCtfScalefactor": 1.0,
    "rlnSphericalAberration": 0.0,
    "rlnAmplitudeContrast": _Q0,
}


def _lognormal(rng: np.random.Generator, sigma: float, size: int) -> np.ndarray:
    """Log-normal factors of mean 1: exp(sigma z - sigma^2 / 2), z standard normal."""
    return np.exp(sigma * rng.standard_normal(size) - sigma**2 / 2)


def _micrograph_index(particles: pd.DataFrame, per_micrograph: int) -> tuple[np.ndarray, list]:
    """Each particle's micrograph (0-based) and the micrograph names: the table's
    ``rlnMicrographName`` if it has one, else ``per_micrograph`` consecutive particles each."""
    if MICROGRAPH_COLUMN in particles.columns:
        index, names = pd.factorize(particles[MICROGRAPH_COLUMN].astype(str))
        return np.asarray(index, np.int64), list(names)
    index = np.arange(len(particles)) // per_micrograph
    count = int(index.max()) + 1 if len(index) else 0
    return index, [f"mic_{j + 1:05d}.mrc" for j in range(count)]


def _perturb_poses(config: SimulateConfig, particles: pd.DataFrame) -> None:
    z = np.random.default_rng([config.seed, 1]).standard_normal((len(particles), 5))
    sigmas = [config.pose_error_deg] * 3 + [config.shift_error_A] * 2
    for j, col in enumerate(_POSE_COLUMNS):
        particles[TRUE_POSE_COLUMNS[col]] = particles[col].to_numpy(np.float64)
        particles[col] = particles[col].to_numpy(np.float64) + sigmas[j] * z[:, j]


def add_particle_nuisances(config: SimulateConfig, particles: pd.DataFrame) -> pd.DataFrame:
    """The particle table with the per-particle nuisances of ``config`` drawn (a copy).

    Arguments:
        config: pose_error_deg, shift_error_A (Gaussian sigmas, degrees per Euler angle and
            Angstrom per shift axis), amplitude_spread, micrograph_noise_spread (log-normal
            sigmas, factors of mean 1), particles_per_micrograph and seed.
        particles: the drawn (or read) particle table; its poses are the true ones.

    Returns:
        the table with perturbed rlnAngle*/rlnOrigin*Angst and the true values in
        ``cryoensembleTrue*`` (pose errors), ``cryoensembleAmplitude`` (amplitude spread),
        ``rlnMicrographName`` and ``cryoensembleNoiseScale`` (micrograph noise spread).
    """
    out = particles.copy()
    n = len(out)
    if config.pose_error_deg > 0 or config.shift_error_A > 0:
        _perturb_poses(config, out)
    if config.amplitude_spread > 0:
        rng = np.random.default_rng([config.seed, 2])
        out[AMPLITUDE_COLUMN] = _lognormal(rng, config.amplitude_spread, n)
    if config.micrograph_noise_spread > 0:
        index, names = _micrograph_index(out, config.particles_per_micrograph)
        rng = np.random.default_rng([config.seed, 3])
        out[MICROGRAPH_COLUMN] = [names[j] for j in index]
        out[NOISE_SCALE_COLUMN] = _lognormal(rng, config.micrograph_noise_spread, len(names))[index]
    return out


def identity_ctf(
    optics: pd.DataFrame, particles: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copies of the tables whose CTF columns describe the identity CTF (:data:`IDENTITY_CTF`),
    for images simulated without CTF: RELION (``--ctf``), cryoDRGN and our readers then apply a
    CTF of 1 instead of modulating data that never were.

    Arguments:
        optics: the optics table (rlnSphericalAberration, rlnAmplitudeContrast are replaced).
        particles: the particle table (defocus, angle, phase shift, B-factor, scale replaced).
    """
    optics, particles = optics.copy(), particles.copy()
    for col, value in IDENTITY_CTF.items():
        table = optics if col in ("rlnSphericalAberration", "rlnAmplitudeContrast") else particles
        table[col] = np.full(len(table), value)
    return optics, particles


def imaged_particles(particles: pd.DataFrame) -> pd.DataFrame:
    """The particle table with the poses that were imaged: the true ones where pose errors put
    the perturbed ones in the STAR columns.

    Arguments:
        particles: a simulated dataset's particle table.
    """
    present = {k: v for k, v in TRUE_POSE_COLUMNS.items() if v in particles.columns}
    if not present:
        return particles
    out = particles.copy()
    for col, true in present.items():
        out[col] = out[true]
    return out


@eqx.filter_jit
def envelope(
    images: Float[ArrayLike, "b n n"], pixel_size: float, b_factor: float
) -> Float[Array, "b n n"]:
    """Images whose Fourier transform is multiplied by exp(-B k^2 / 4) (RELION's rlnCtfBfactor
    convention), k in 1/Angstrom.

    Arguments:
        images: (b, n, n) images.
        pixel_size: Angstrom per pixel.
        b_factor: B in A^2.
    """
    images = jnp.asarray(images)
    n = images.shape[-1]
    k2 = frequency_radius(n, pixel_size, dtype=images.dtype) ** 2
    filt = jnp.exp(-b_factor * k2 / 4)
    return jnp.fft.irfft2(jnp.fft.rfft2(images) * filt, s=(n, n)).astype(images.dtype)


@eqx.filter_jit
def ctf_modulate(
    fields: Float[ArrayLike, "b n n"], params: CTFParams, pixel_size: float
) -> Float[Array, "b n n"]:
    """Fields whose Fourier transform is multiplied by each one's CTF on the n x n grid (no
    padding: the ice is a stationary, periodic background, not a particle in a box).

    Arguments:
        fields: (b, n, n) projected-potential-like images.
        params: CTF parameters with (b,) fields.
        pixel_size: Angstrom per pixel.
    """
    fields = jnp.asarray(fields)
    n = fields.shape[-1]
    kx, ky = frequency_grid(n, pixel_size, dtype=fields.dtype)
    transfer = jax.vmap(lambda p: ctf(p, kx, ky))(params)
    return jnp.fft.irfft2(jnp.fft.rfft2(fields) * transfer, s=(n, n)).astype(fields.dtype)


@eqx.filter_jit
def modulated_ice_variance(params: CTFParams, n: int, pixel_size: float) -> Float[Array, " b"]:
    """Per-pixel variance of unit-variance ice after each particle's CTF: the mean over the full
    frequency grid of PSD(k) CTF(k)^2 (Parseval).

    Arguments:
        params: CTF parameters with (b,) fields.
        n: image side in pixels.
        pixel_size: Angstrom per pixel.
    """
    kx, ky = frequency_grid(n, pixel_size, rfft=False)
    psd = ice_psd(n, pixel_size, rfft=False)
    return jax.vmap(lambda p: jnp.mean(psd * ctf(p, kx, ky) ** 2))(params)
