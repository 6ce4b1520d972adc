"""The images of a simulated dataset, batch by batch: structures -> Gaussian atoms -> the imaging
pipeline -> phase contrast -> noise. Pure orchestration of the stages (grouping particles by
structure, padding groups to few shapes, one noise level per dataset).

Physics. Each structure becomes Peng Gaussian atoms (``selection``, optionally with its B-factors
and a global extra B-factor), centred on the mass-weighted centre of *all* its atoms (``center``).
Images are formed by :func:`cryoensemble.imaging.simulate_images` (exact pixel integrals, CTF on a
``pad_factor`` zero-padded box) and turned into the dimensionless phase contrast by
:func:`cryoensemble.imaging.phase_contrast`, with RELION's CTF sign (protein bright at low
resolution, as RELION's contrast-inverted particles).

Noise. ``gaussian``: white noise of one standard deviation sigma for the whole dataset (as in real
data), sigma^2 = mean signal variance / SNR, the signal variance measured inside a disc of radius
``snr_mask_radius`` pixels (default box // 2) on the clean images of the first batch (at most
``batch_size`` particles). ``poisson``: shot noise at ``dose`` e/A^2. Noise keys are
``fold_in(fold_in(key(seed), 1), batch index)``, so a dataset is reproducible from its config.
"""

from __future__ import annotations

from collections.abc import Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from cryoensemble.errors import InputError
from cryoensemble.imaging import ImagingConfig, phase_contrast, simulate_images_jit
from cryoensemble.io._star import ParticleTable, arrays_from_columns, particle_columns
from cryoensemble.noise import AbstractNoiseModel, PoissonNoise, WhiteGaussianNoise, snr_noise_sigma
from cryoensemble.scattering import GaussianAtoms, gaussian_atoms
from cryoensemble.structure import read_structure
from cryoensemble.workflows.simulate._config import SimulateConfig

__all__ = ["iter_images", "load_atoms"]


def load_atoms(config: SimulateConfig) -> tuple[list[GaussianAtoms], list[np.ndarray | None]]:
    """The Gaussian atoms of every structure of ``config``, placed as ``config.center`` says.

    Arguments:
        config: the configuration (``structures``, ``center``, ``selection``, B-factors).

    Returns:
        ``(atoms, centers)``: one :class:`GaussianAtoms` per structure and the centre (3,) in
        Angstrom moved to the origin (None: the file's coordinates).
    """
    models = [read_structure(p) for p in config.structures]
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


def _noise_model(config: SimulateConfig, pilot: np.ndarray) -> AbstractNoiseModel | None:
    """The dataset's noise model; the gaussian level is set by the ``pilot`` clean images."""
    if config.noise == "gaussian":
        sigma = snr_noise_sigma(jnp.asarray(pilot), float(config.snr), config.mask_radius)[0]
        return WhiteGaussianNoise(float(sigma))
    if config.noise == "poisson":
        return PoissonNoise(float(config.dose), float(config.pixel_size))
    return None


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


def iter_images(
    resolved: SimulateConfig,
    optics: pd.DataFrame,
    particles: pd.DataFrame,
    atoms: list[GaussianAtoms],
    mesh,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, float | None]]:
    """Yield ``(indices, clean, noisy, sigma)`` batch by batch (the core of the simulation).

    Every per-particle quantity is taken from the tables (float32, as
    :func:`cryoensemble.io.particle_arrays` does), so re-running on a table read back from disk
    gives the same images.

    Arguments:
        resolved: a resolved configuration (see :func:`resolve_config`).
        optics: the optics table.
        particles: the particle table, with ``cryoensembleStructureIndex``.
        atoms: the Gaussian atoms of each structure (see :func:`load_atoms`).
        mesh: the device mesh the particles are spread over.

    Yields:
        particle indices (k,), clean and noisy float32 images (k, n, n) in phase-contrast units,
        and the gaussian noise sigma (None for other noise models).
    """
    structure = particles["cryoensembleStructureIndex"].to_numpy(np.int64)
    if structure.size and (structure.min() < 0 or structure.max() >= len(atoms)):
        raise InputError(
            f"cryoensembleStructureIndex out of range [0, {len(atoms)}) for the structures"
        )
    columns = particle_columns(ParticleTable(optics=optics, particles=particles, path=None))
    clean_batch = _CleanBatch(resolved, columns, structure, atoms, mesh)
    noise_key = jax.random.fold_in(jax.random.key(resolved.seed), 1)
    model = None
    n, bs = len(particles), int(resolved.batch_size)
    for b_index, start in enumerate(range(0, n, bs)):
        idx = np.arange(start, min(n, start + bs))
        clean = clean_batch(idx)
        if model is None and resolved.noise != "none":
            model = _noise_model(resolved, clean[: len(idx)])
        noisy = clean
        if model is not None:
            noisy = np.asarray(_sample(model, jax.random.fold_in(noise_key, b_index), clean))
        sigma = float(model.sigma) if isinstance(model, WhiteGaussianNoise) else None
        yield idx, clean[: len(idx)], noisy[: len(idx)], sigma
