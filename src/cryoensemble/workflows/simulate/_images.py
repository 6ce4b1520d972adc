"""The images of a simulated dataset, batch by batch: structures -> Gaussian atoms -> the imaging
pipeline -> phase contrast -> noise. Pure orchestration of the stages (grouping particles by
structure, padding groups to few shapes, one noise level per dataset).

Physics. Each structure becomes Peng Gaussian atoms (``selection``, optionally with its B-factors
and a global extra B-factor), centred on the mass-weighted centre of *all* its atoms (``center``).
Images are formed by :func:`cryoensemble.imaging.simulate_images` (exact pixel integrals, CTF on a
``pad_factor`` zero-padded box) and turned into the dimensionless phase contrast by
:func:`cryoensemble.imaging.phase_contrast`, with RELION's CTF sign (protein bright at low
resolution, as RELION's contrast-inverted particles).

Signal nuisances (off by default, ``_nuisances.py``): the envelope exp(-B k^2 / 4) and the
per-particle amplitude multiply the clean phase contrast, which is the signal of the SNR.

Noise. ``gaussian``: noise of one standard deviation sigma for the whole dataset (as in real
data), sigma^2 = mean signal variance / SNR, the signal variance measured inside a disc of radius
``snr_mask_radius`` pixels (default box // 2) on the clean images of the first batch (at most
``batch_size`` particles). With ``ice_fraction`` f, a fraction f of sigma^2 is amorphous ice
passed through each particle's CTF (scaled so that its variance after the CTF is f sigma^2 on
average over the first batch) and 1 - f white noise on top; ``micrograph_noise_spread`` scales
both per micrograph. ``poisson``: shot noise at ``dose`` e/A^2. White noise keys are
``fold_in(fold_in(key(seed), 1), batch index)``, ice keys ``fold_in(fold_in(key(seed), 2), batch
index)``, so a dataset is reproducible from its config. Last, ``invert_contrast`` and
``normalize`` map the noisy images (and the clean ones alike) as RELION's preprocessing does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from cryoensemble.errors import InputError
from cryoensemble.imaging import ImagingConfig, phase_contrast, simulate_images_jit
from cryoensemble.io._star import ParticleTable, arrays_from_columns, particle_columns
from cryoensemble.ndimage import background_statistics, normalize_background
from cryoensemble.noise import (
    AbstractNoiseModel,
    PoissonNoise,
    WhiteGaussianNoise,
    sample_ice,
    snr_noise_sigma,
)
from cryoensemble.optics import CTFParams
from cryoensemble.scattering import GaussianAtoms, gaussian_atoms
from cryoensemble.structure import read_structure
from cryoensemble.workflows.simulate._config import SimulateConfig
from cryoensemble.workflows.simulate._nuisances import (
    AMPLITUDE_COLUMN,
    NOISE_SCALE_COLUMN,
    ctf_modulate,
    envelope,
    imaged_particles,
    modulated_ice_variance,
)

__all__ = ["ImageBatch", "NoiseLevels", "iter_images", "load_atoms"]


def load_atoms(config: SimulateConfig) -> tuple[list[GaussianAtoms], list[np.ndarray | None]]:
    """The Gaussian atoms of every structure of ``config``, placed as ``config.center`` says.

    Arguments:
        config: the configuration (``structures``, ``center``, ``selection``, B-factors).

    Returns:
        ``(atoms, centers)``: one :class:`GaussianAtoms` per structure and the centre (3,) in
        Angstrom moved to the origin (None: the file's coordinates).
    """
    models = [read_structure(p, require_b_factors=config.use_b_factors) for p in config.structures]
    if config.center == "each":
        centers = [np.asarray(m.center_of_mass(), np.float64) for m in models]
    elif config.center == "first":
        centers = [np.asarray(models[0].center_of_mass(), np.float64)] * len(models)
    else:
        centers = [None] * len(models)
    atoms = [
        gaussian_atoms(
            m,
            selection=config.selection,
            center=c,
            use_b_factors=config.use_b_factors,
            b_factor=config.b_factor,
        )
        for m, c in zip(models, centers, strict=True)
    ]
    return atoms, centers


def _bucket(n: int, batch_size: int, single: bool) -> int:
    """Padded size of a group of ``n`` particles of one structure in a batch.

    Shapes are static under jit, so groups are padded to few sizes: the full ``batch_size`` when
    the batch holds one structure (one compilation), else the smallest of batch_size / 8, / 4,
    / 2, / 1 that holds them (at most four compilations per structure).
    """
    if single or n >= batch_size:
        return max(n, batch_size)
    size = max(1, batch_size // 8)
    while size < n:
        size *= 2
    return min(size, batch_size)


@eqx.filter_jit
def _sample(
    model: AbstractNoiseModel, key: PRNGKeyArray, clean: Float[ArrayLike, "b n n"]
) -> Float[Array, "b n n"]:
    return model.sample(key, clean)


@dataclasses.dataclass(frozen=True)
class NoiseLevels:
    """The dataset's gaussian noise, set once from the first batch (image units).

    Arguments:
        sigma: total noise standard deviation at the SNR (micrograph noise factor 1).
        white: standard deviation of the white part, sigma sqrt(1 - ice_fraction).
        ice: factor on unit-variance ice (before the CTF) that makes the CTF-modulated ice
            variance ice_fraction sigma^2 on average over the first batch (0 without ice).
    """

    sigma: float
    white: float
    ice: float


def _noise_levels(
    config: SimulateConfig, pilot: np.ndarray, ctf_params: Callable[[], CTFParams]
) -> NoiseLevels:
    """The gaussian noise levels from the ``pilot`` clean images and their CTFs (a callable:
    only needed with ice)."""
    sigma = float(snr_noise_sigma(jnp.asarray(pilot), float(config.snr), config.mask_radius)[0])
    f = float(config.ice_fraction)
    ice = 0.0
    if f > 0:
        variance = 1.0  # unit-variance ice, unchanged without CTF
        if config.apply_ctf:
            n, px = pilot.shape[-1], float(config.pixel_size)
            variance = float(jnp.mean(modulated_ice_variance(ctf_params(), n, px)))
        ice = sigma * float(np.sqrt(f / variance))
    return NoiseLevels(sigma=sigma, white=sigma * float(np.sqrt(1.0 - f)), ice=ice)


@dataclasses.dataclass(frozen=True)
class ImageBatch:
    """One batch of simulated particles (see :func:`iter_images`).

    Arguments:
        indices: (k,) 0-based particle indices.
        clean: (k, n, n) float32 noise-free images, in the units of ``noisy``.
        noisy: (k, n, n) float32 images as written to the stacks.
        noise: the gaussian noise levels in phase-contrast units (None for other noise
            models).
        image_scale: (k,) factor and ``image_offset`` (k,) offset of the contrast inversion and
            normalisation: written image = image_scale * phase-contrast image + image_offset.
        image_offset: (k,) see ``image_scale``.
    """

    indices: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray
    noise: NoiseLevels | None
    image_scale: np.ndarray
    image_offset: np.ndarray


class _Nuisances:
    """The per-image nuisances of a dataset: signal factors, ice, noise scales, preprocessing."""

    def __init__(self, config: SimulateConfig, particles: pd.DataFrame, columns) -> None:
        self.config, self.columns = config, columns
        self.amplitude = _column(particles, AMPLITUDE_COLUMN)
        self.noise_scale = _column(particles, NOISE_SCALE_COLUMN)
        self.ice_key = jax.random.fold_in(jax.random.key(config.seed), 2)

    def signal(self, clean: np.ndarray, padded: np.ndarray) -> np.ndarray:
        """Envelope and amplitude applied to the clean phase contrast (unchanged when off)."""
        cfg = self.config
        if cfg.envelope_b_factor > 0:
            px, b = float(cfg.pixel_size), float(cfg.envelope_b_factor)
            clean = np.asarray(envelope(clean, px, b))
        if self.amplitude is not None:
            clean = clean * self.amplitude[padded][:, None, None]
        return clean

    def ctf(self, padded: np.ndarray) -> CTFParams:
        """The CTF parameters of the (padded) batch."""
        return arrays_from_columns(self.columns, padded)["ctf"]

    def add_noise(
        self, key: PRNGKeyArray, b_index: int, levels: NoiseLevels, clean, padded: np.ndarray
    ) -> np.ndarray:
        """Clean images + CTF-modulated ice + white noise, both scaled per micrograph."""
        scale = None if self.noise_scale is None else self.noise_scale[padded]
        base = clean
        if levels.ice > 0:
            px = float(self.config.pixel_size)
            ice = sample_ice(jax.random.fold_in(self.ice_key, b_index), clean.shape, px)
            if self.config.apply_ctf:
                ice = ctf_modulate(ice, self.ctf(padded), px)
            factor = levels.ice if scale is None else levels.ice * scale
            base = clean + np.asarray(ice) * np.asarray(factor, np.float32).reshape(-1, 1, 1)
        white = levels.white if scale is None else (levels.white * scale).astype(np.float32)
        return np.asarray(_sample(WhiteGaussianNoise(white), key, base))

    def preprocess(self, clean: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, ...]:
        """Contrast inversion and background normalisation, the same affine map on both."""
        cfg = self.config
        scale = np.ones(len(noisy), np.float32)
        offset = np.zeros(len(noisy), np.float32)
        if cfg.invert_contrast:
            clean, noisy, scale = -clean, -noisy, -scale
        if cfg.normalize:
            radius = cfg.background_radius
            mean, std = (np.asarray(x) for x in background_statistics(noisy, radius))
            std = np.where(std > 0, std, np.float32(1))  # as normalize_background does
            clean = np.asarray(normalize_background(clean, radius, reference=noisy))
            noisy = np.asarray(normalize_background(noisy, radius))
            scale, offset = scale / std, -mean / std
        return clean, noisy, scale, offset


class _CleanBatch:
    """Noise-free images of the particles of a batch, grouped by structure."""

    def __init__(self, config: SimulateConfig, columns, structure, atoms, mesh) -> None:
        self.columns, self.structure, self.atoms, self.mesh = columns, structure, atoms, mesh
        self.box, self.batch_size = int(config.box_size), int(config.batch_size)
        self.imaging = [
            ImagingConfig.for_atoms(
                a,
                config.box_size,
                config.pixel_size,
                pad_factor=float(config.pad_factor),
                apply_ctf=bool(config.apply_ctf),
            )
            for a in atoms
        ]

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        """(batch_size, n, n) float32 phase contrast; rows past ``len(idx)`` are zero."""
        clean = np.zeros((self.batch_size, self.box, self.box), np.float32)
        present = np.unique(self.structure[idx])
        for s in present:
            members = np.flatnonzero(self.structure[idx] == s)
            size = _bucket(len(members), self.batch_size, single=len(present) == 1)
            padded = np.concatenate(
                [members, np.full(size - len(members), members[-1], members.dtype)]
            )
            arrays = arrays_from_columns(self.columns, idx[padded])
            ctf = arrays["ctf"]
            images = simulate_images_jit(
                self.atoms[s],
                arrays["rotations"],
                arrays["shifts"],
                ctf,
                self.imaging[s],
                mesh=self.mesh,
            )
            clean[members] = np.asarray(phase_contrast(images, ctf.voltage))[: len(members)]
        return clean


def _column(particles: pd.DataFrame, name: str) -> np.ndarray | None:
    return particles[name].to_numpy(np.float32) if name in particles.columns else None


def _padded(idx: np.ndarray, size: int) -> np.ndarray:
    """``idx`` padded to ``size`` by repeating its last index (the padded rows are discarded)."""
    return np.concatenate([idx, np.full(size - len(idx), idx[-1], idx.dtype)])


def _poisson(config: SimulateConfig) -> PoissonNoise:
    return PoissonNoise(float(config.dose), float(config.pixel_size))


def iter_images(
    resolved: SimulateConfig,
    optics: pd.DataFrame,
    particles: pd.DataFrame,
    atoms: list[GaussianAtoms],
    mesh,
) -> Iterator[ImageBatch]:
    """Yield the dataset's images batch by batch (the core of the simulation).

    Every per-particle quantity is taken from the tables (float32, as
    :func:`cryoensemble.io.particle_arrays` does), so re-running on a table read back from disk
    gives the same images. Particles are imaged at their true poses (``cryoensembleTrue*`` where
    pose errors perturbed the STAR columns).

    Arguments:
        resolved: a resolved configuration (see :func:`resolve_config`).
        optics: the optics table.
        particles: the particle table, with ``cryoensembleStructureIndex``.
        atoms: the Gaussian atoms of each structure (see :func:`load_atoms`).
        mesh: the device mesh the particles are spread over.

    Yields:
        one :class:`ImageBatch` per ``batch_size`` particles.
    """
    structure = particles["cryoensembleStructureIndex"].to_numpy(np.int64)
    if structure.size and (structure.min() < 0 or structure.max() >= len(atoms)):
        raise InputError(
            f"cryoensembleStructureIndex out of range [0, {len(atoms)}) for the structures"
        )
    table = ParticleTable(optics=optics, particles=imaged_particles(particles), path=None)
    columns = particle_columns(table)
    clean_batch = _CleanBatch(resolved, columns, structure, atoms, mesh)
    nuisances = _Nuisances(resolved, particles, columns)
    noise_key = jax.random.fold_in(jax.random.key(resolved.seed), 1)
    levels = None
    n, bs = len(particles), int(resolved.batch_size)
    for b_index, start in enumerate(range(0, n, bs)):
        idx = np.arange(start, min(n, start + bs))
        padded = _padded(idx, bs)
        clean = nuisances.signal(clean_batch(idx), padded)
        key = jax.random.fold_in(noise_key, b_index)
        noisy = clean
        if resolved.noise == "gaussian":
            if levels is None:
                pilot_ctf = functools.partial(nuisances.ctf, idx)
                levels = _noise_levels(resolved, clean[: len(idx)], pilot_ctf)
            noisy = nuisances.add_noise(key, b_index, levels, clean, padded)
        elif resolved.noise == "poisson":
            noisy = np.asarray(_sample(_poisson(resolved), key, clean))
        k = len(idx)
        clean, noisy, scale, offset = nuisances.preprocess(clean[:k], noisy[:k])
        yield ImageBatch(idx, clean, noisy, levels, scale, offset)
