"""The library drivers of the pose search: references, the search over a particle set, the
pose-marginalised likelihood matrix and angular errors. The math is in ``_kernels.py`` and
described in :mod:`cryoensemble.posesearch`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.imaging import AbstractParticles, ArrayParticles
from cryoensemble.optics import CTFParams
from cryoensemble.pose import euler_to_matrix, hopf_grid, matrix_to_euler, rotation_angle
from cryoensemble.posesearch._config import PoseSearchConfig
from cryoensemble.posesearch._kernels import _geometry, _plan, _score_rotations_jit, _search_batch
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.projection import MapProjector, prepare_map_projection, render_map
from cryoensemble.scattering import GaussianAtoms

__all__ = [
    "PoseSearchResult",
    "angular_errors",
    "marginal_log_likelihood_matrix",
    "pose_search",
    "pose_search_arrays",
    "prepare_reference",
    "score_rotations",
]

#: A structure the search accepts: Gaussian atoms, a (N, N, N) volume or a prepared map.
Reference = GaussianAtoms | MapProjector | Float[ArrayLike, "N N N"]


@dataclasses.dataclass
class PoseSearchResult:
    """Best poses and likelihoods, one row per particle and one column per structure.

    Arguments:
        rotations: (n, M, 3, 3) RELION rotation matrices of the best poses.
        euler: (n, M, 3) their (rot, tilt, psi) in degrees.
        shifts: (n, M, 2) their (rlnOriginXAngst, rlnOriginYAngst) in Angstrom.
        log_likelihood: (n, M) the score at the best pose.
        marginal_log_likelihood: (n, M) the pose-marginalised log-likelihood.
        indices: (n,) the 0-based particles.
        info: the grid, the levels' sampling and the timing.
    """

    rotations: np.ndarray
    euler: np.ndarray
    shifts: np.ndarray
    log_likelihood: np.ndarray
    marginal_log_likelihood: np.ndarray
    indices: np.ndarray
    info: dict

    @property
    def best_structure(self) -> np.ndarray:
        """(n,) argmax of the marginal likelihood over the structures."""
        return np.argmax(self.marginal_log_likelihood, axis=1)

    def best(self) -> dict[str, np.ndarray]:
        """Per particle, the pose for its most likely structure: structure, rotations, euler,
        shifts, log_likelihood, marginal_log_likelihood."""
        k = self.best_structure
        rows = np.arange(len(k))
        return {
            "structure": k,
            "rotations": self.rotations[rows, k],
            "euler": self.euler[rows, k],
            "shifts": self.shifts[rows, k],
            "log_likelihood": self.log_likelihood[rows, k],
            "marginal_log_likelihood": self.marginal_log_likelihood[rows, k],
        }


def prepare_reference(
    structure: Reference,
    box_size: int,
    pixel_size: float,
    config: PoseSearchConfig | None = None,
) -> MapProjector:
    """A :class:`~cryoensemble.projection.MapProjector` for ``structure``.

    Arguments:
        structure: :class:`~cryoensemble.scattering.GaussianAtoms` (rendered on a box_size^3 map
            of voxel pixel_size, then prepared), a (box_size,)^3 volume (voxel = pixel_size), or a
            prepared MapProjector (its box and voxel size must match the particles).
        box_size: the particles' box (pixels).
        pixel_size: the particles' pixel size (Angstrom).
        config: the search settings (its ``interpolation``).
    """
    cfg = config or PoseSearchConfig()
    n, v = int(box_size), float(pixel_size)
    if isinstance(structure, MapProjector):
        if structure.box_size != n or abs(structure.voxel_size - v) > 1e-4 * v:
            raise InputError(
                f"the map is {structure.box_size} voxels of {structure.voxel_size:g} A but the "
                f"particles are {n} pixels of {v:g} A"
            )
        return structure
    if isinstance(structure, GaussianAtoms):
        volume = render_map(structure, n, v)
    else:
        volume = jnp.asarray(structure, jnp.float32)
        if volume.shape != (n, n, n):
            raise InputError(
                f"the map has shape {tuple(volume.shape)} but the particles need ({n}, {n}, {n})"
            )
    return prepare_map_projection(volume, v, pad_factor=2.0, interpolation=cfg.interpolation)


def score_rotations(
    images: Float[ArrayLike, "p n n"],
    ctf: CTFParams,
    structure: Reference,
    rotations: Float[ArrayLike, "r 3 3"],
    pixel_size: float,
    config: PoseSearchConfig | None = None,
) -> dict[str, np.ndarray]:
    """Scores of every particle at every given rotation and every window shift (no search).

    For checks and small problems: memory is P x R x G^2.

    Arguments:
        images: (P, N, N) particle images.
        ctf: their CTF parameters ((P,) or scalar fields).
        structure: the reference (see :func:`prepare_reference`).
        rotations: (R, 3, 3) RELION rotation matrices.
        pixel_size: Angstrom per pixel.
        config: the search settings (shift window, likelihood, padding).

    Returns:
        ``scores`` (P, R, S), the log-likelihood of particle p at rotation r and translation
        t_s; ``t`` (S, 2) the translations in pixels (shift = -t * pixel_size, Angstrom); and
        ``log_prior`` (S,).
    """
    cfg = config or PoseSearchConfig()
    images = jnp.asarray(images, jnp.float32)
    n, v = images.shape[-1], float(pixel_size)
    grid, win, _ = _geometry(cfg, n, v)
    projector = prepare_reference(structure, n, v, cfg)
    rots = jnp.asarray(rotations, jnp.float32)
    s = _score_rotations_jit(projector, images, ctf, rots, win, cfg, n, grid, v)
    return {"scores": np.asarray(s), "t": np.asarray(win.t), "log_prior": np.asarray(win.log_prior)}


def _as_list(structures) -> list:
    if isinstance(structures, GaussianAtoms | MapProjector):
        structures = [structures]
    structures = list(structures)
    if not structures:
        raise InputError("at least one structure or map is needed")
    return structures


def _check_finite(best: np.ndarray, marg: np.ndarray, indices: np.ndarray) -> None:
    bad = ~(np.isfinite(marg).all(1) & np.isfinite(best).all(1))
    if bad.any():
        raise InputError(
            f"non-finite log-likelihood for particle {int(indices[np.flatnonzero(bad)[0]])} "
            "(0-based): check the image (constant or NaN pixels?) and the options"
        )


def _info(cfg: PoseSearchConfig, geoms, wins, max_shift: float, n: int, elapsed: float) -> dict:
    """The search's settings and sampling, for reports."""
    return {
        "grid": "Hopf fibration (HEALPix nested directions x uniform psi)",
        "levels": cfg.levels(),
        "base_level": cfg.base_level,
        "n_refine": cfg.n_refine,
        "n_candidates": cfg.n_candidates,
        "final_resolution_deg": cfg.final_resolution,
        "max_shift_angstrom": float(max_shift),
        "n_shifts": int(wins[-1].flat.shape[0]),
        "shift_sigma_angstrom": cfg.shift_sigma,
        "kind": cfg.kind,
        "exact": cfg.exact,
        "pad_factor": cfg.pad_factor,
        "template_grid": geoms[-1].grid,
        "level_boxes": [g.n for g in geoms],
        "level_pixel_sizes": [g.v for g in geoms],
        "level_template_grids": [g.grid for g in geoms],
        "marginal_sampling": f"{geoms[-1].n} px of {geoms[-1].v:.4g} A (the final level)",
        "coarse_box": cfg.coarse_box,
        "band_limit": cfg.band_limit,
        "interpolation": cfg.interpolation,
        "apply_ctf": cfg.apply_ctf,
        "elapsed_s": elapsed,
        "particles_per_s": n / max(elapsed, 1e-9),
        "backend": jax.default_backend(),
    }


def pose_search(
    dataset: AbstractParticles,
    structures: Reference | Sequence[Reference],
    config: PoseSearchConfig | None = None,
    *,
    indices: ArrayLike | Sequence[int] | None = None,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> PoseSearchResult:
    """Search the pose of every particle of ``dataset`` against every structure, coarse to fine.

    The poses the dataset may hold are ignored.

    Arguments:
        dataset: the particles (a :class:`~cryoensemble.io.ParticleDataset`,
            :class:`~cryoensemble.imaging.ArrayParticles`, ...).
        structures: GaussianAtoms, volumes or MapProjectors (see :func:`prepare_reference`).
        config: the search settings (default :class:`PoseSearchConfig`).
        indices: 0-based particles to search (default all).
        progress: reports the particles done.
    """
    cfg = config or PoseSearchConfig()
    structures = _as_list(structures)
    if len(dataset) == 0:
        raise InputError(f"{getattr(dataset, 'star_path', 'dataset')}: no particles")
    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, np.int64).ravel()
    n, v = int(dataset.box_size), float(dataset.pixel_size)
    geoms, wins, max_shift = _plan(cfg, n, v)
    projectors = [prepare_reference(s, n, v, cfg) for s in structures]
    g = hopf_grid(cfg.base_level)
    base = (jnp.asarray(g.pixels), jnp.asarray(g.psi_index), jnp.asarray(g.rotations))
    pb, chunk = cfg.batch_sizes()
    pb, chunk = min(pb, len(idx)), min(chunk, g.size)
    shape = (len(idx), len(projectors))
    rot, shifts = np.zeros(shape + (3, 3), np.float32), np.zeros(shape + (2,), np.float32)
    best, marg = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    t0 = time.perf_counter()
    with progress.task("pose search", total=len(idx), unit="particles") as task:
        for s in range(0, len(idx), pb):
            b = idx[s : s + pb]
            batch = dataset.batch(b, pad_to=pb)
            for j, proj in enumerate(projectors):
                out = _search_batch(proj, batch.images, batch.ctf, base, wins, cfg, geoms, chunk)
                r, t, sc, lz = (np.asarray(a)[: len(b)] for a in out)
                rot[s : s + len(b), j], shifts[s : s + len(b), j] = r, t
                best[s : s + len(b), j], marg[s : s + len(b), j] = sc, lz
            rate = (s + len(b)) / max(time.perf_counter() - t0, 1e-9)
            task.advance(len(b), rate=f"{rate:,.2f} particles/s")
    elapsed = time.perf_counter() - t0
    _check_finite(best, marg, idx)
    e = np.stack([np.asarray(a) for a in matrix_to_euler(jnp.asarray(rot))], axis=-1)
    info = _info(cfg, geoms, wins, max_shift, len(idx), elapsed)
    return PoseSearchResult(rot, e.astype(np.float32), shifts, best, marg, idx, info)


def pose_search_arrays(
    images: Float[ArrayLike, "n N N"],
    ctf: CTFParams,
    pixel_size: float,
    structures: Reference | Sequence[Reference],
    config: PoseSearchConfig | None = None,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> PoseSearchResult:
    """:func:`pose_search` on in-memory images.

    Arguments:
        images: (n, N, N) particle images.
        ctf: their CTF parameters ((n,) or scalar fields).
        pixel_size: Angstrom per pixel.
        structures: GaussianAtoms, volumes or MapProjectors.
        config: the search settings.
        progress: reports the particles done.
    """
    particles = ArrayParticles(images, ctf, pixel_size)
    return pose_search(particles, structures, config, progress=progress)


def marginal_log_likelihood_matrix(
    dataset: AbstractParticles,
    structures: Reference | Sequence[Reference],
    config: PoseSearchConfig | None = None,
    *,
    indices: ArrayLike | Sequence[int] | None = None,
    progress: AbstractProgressMeter = NoProgressMeter(),
) -> Float[np.ndarray, "n m"]:
    """L (n_particles, n_structures) float32: log p(image | structure) with the pose (rotation
    and shift) marginalised over the search grid.

    Feed it to :func:`cryoensemble.inference.fit_weights_em` / ``sample_posterior_gibbs`` /
    :func:`cryoensemble.workflows.reweight.reweight_matrix` to reweight without known poses.

    Arguments:
        dataset: the particles.
        structures: GaussianAtoms, volumes or MapProjectors.
        config: the search settings.
        indices: 0-based particles (default all).
        progress: reports the particles done.
    """
    res = pose_search(dataset, structures, config, indices=indices, progress=progress)
    return res.marginal_log_likelihood


def angular_errors(
    rotations: Float[ArrayLike, "n 3 3"], euler_true: Float[ArrayLike, "n 3"]
) -> Float[np.ndarray, " n"]:
    """Geodesic angle (degrees) between estimated rotations and true Euler angles.

    Arguments:
        rotations: (n, 3, 3) RELION rotation matrices.
        euler_true: (n, 3) true (rot, tilt, psi) in degrees.
    """
    e = jnp.asarray(euler_true, jnp.float32)
    truth = euler_to_matrix(e[:, 0], e[:, 1], e[:, 2])
    return np.asarray(rotation_angle(jnp.asarray(rotations, jnp.float32), truth), np.float64)
