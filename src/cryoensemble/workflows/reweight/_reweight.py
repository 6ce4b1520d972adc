"""Population reweighting of a structural ensemble against particle images (the library functions).

:func:`reweight` computes the likelihood matrix (known poses: :func:`cryoensemble.inference.
likelihood_matrix`; unknown poses: the pose-marginalised
:func:`cryoensemble.posesearch.marginal_log_likelihood_matrix`) and hands it to
:func:`reweight_matrix`, which fits the weights (EM), samples their posterior (Gibbs) and runs the
held-out check. The outputs are written by :func:`cryoensemble.workflows.reweight.write_outputs`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from cryoensemble.errors import InputError
from cryoensemble.imaging import AbstractParticles, ImagingConfig
from cryoensemble.inference import (
    LikelihoodConfig,
    fit_weights_em,
    held_out_check,
    likelihood_matrix,
    sample_posterior_gibbs,
    summarize_samples,
)
from cryoensemble.io import ParticleDataset, read_map
from cryoensemble.ndimage import circular_mask
from cryoensemble.noise import estimate_psd_from_dataset
from cryoensemble.posesearch import PoseSearchConfig, marginal_log_likelihood_matrix
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.projection import MapProjector, default_half_width, prepare_map_projection
from cryoensemble.scattering import GaussianAtoms
from cryoensemble.structure import AtomicModel, NamedModel
from cryoensemble.workflows.reweight._atoms import prepare_atoms
from cryoensemble.workflows.reweight._config import check_likelihood_options

__all__ = ["ReweightResult", "reweight", "reweight_matrix"]


@dataclasses.dataclass
class ReweightResult:
    """Everything :func:`~cryoensemble.workflows.reweight.write_outputs` writes.

    Arguments:
        names: display name of each structure.
        structures: the file (and model/frame) of each structure.
        L: (n, M) log-likelihood matrix.
        indices: (n,) 0-based particles (rows of the STAR file) of the rows of ``L``.
        map_weights: (M,) MAP weights (EM).
        n_iterations: EM iterations.
        converged: whether EM reached its tolerance.
        samples: (S, M) posterior samples of the weights (Gibbs).
        summary: posterior mean, median, std, interval (``lower``, ``upper``), ESS.
        heldout: the held-out check (None when skipped).
        meta: the options and data description recorded in weights.json.
    """

    names: list[str]
    structures: list[str]
    L: np.ndarray
    indices: np.ndarray
    map_weights: np.ndarray
    n_iterations: int
    converged: bool
    samples: np.ndarray
    summary: dict
    heldout: dict | None
    meta: dict

    def to_json(self) -> dict:
        """The weights.json record (weights = posterior means, with their interval)."""
        s = self.summary
        return {
            "weights": s["mean"].tolist(),
            "lower": s["lower"].tolist(),
            "upper": s["upper"].tolist(),
            "credible_level": s["credible_level"],
            "names": self.names,
            "structures": self.structures,
            "mean": s["mean"].tolist(),
            "median": s["median"].tolist(),
            "std": s["std"].tolist(),
            "map": self.map_weights.tolist(),
            "ess": s["ess"].tolist(),
            "n_samples": s["n_samples"],
            "n_iterations": int(self.n_iterations),
            "converged": bool(self.converged),
            "n_particles": int(self.L.shape[0]),
            "heldout": self.heldout,
            **{k: v for k, v in self.meta.items() if k not in ("weights", "lower", "upper")},
        }


def _prior_counts(prior_counts: ArrayLike | Sequence[float] | None, m: int) -> np.ndarray:
    c = np.zeros(m) if prior_counts is None else np.asarray(prior_counts, np.float64)
    if c.shape not in ((), (1,), (m,)):
        raise InputError(f"prior counts: expected {m} values (one per structure), got {c.size}")
    return np.broadcast_to(c.reshape(-1) if c.ndim else c, (m,)).copy()


def reweight_matrix(
    L: Float[ArrayLike, "n m"],
    names: Sequence[str] | None = None,
    structures: Sequence[str] | None = None,
    prior_counts: ArrayLike | Sequence[float] | None = None,
    credible_level: float = 0.9,
    n_samples: int = 2000,
    burn_in: int = 500,
    seed: int = 0,
    heldout_fraction: float | None = 0.2,
    tol: float = 1e-8,
    indices: ArrayLike | Sequence[int] | None = None,
    meta: dict | None = None,
) -> ReweightResult:
    """Weights (MAP by EM), their posterior (Gibbs) and the held-out check from a matrix ``L``.

    Arguments:
        L: (n, M) log p(image n | structure m).
        names: display names (default ``structure_i``).
        structures: sources of the structures (default the names).
        prior_counts: Dirichlet prior counts, one per structure or one for all (default 0).
        credible_level: level of the equal-tailed posterior intervals, in (0, 1).
        n_samples: posterior samples kept.
        burn_in: Gibbs iterations discarded.
        seed: random seed of the sampler and the held-out split.
        heldout_fraction: fraction of particles held out (None or 0: no check; needs >= 10).
        tol: EM tolerance.
        indices: 0-based particles of the rows (default 0..n-1).
        meta: extra record for weights.json.
    """
    L = np.asarray(L)
    m = L.shape[1]
    names = [f"structure_{i}" for i in range(m)] if names is None else list(names)
    structures = list(names) if structures is None else list(structures)
    if len(names) != m:
        raise InputError(f"{len(names)} structure names for a likelihood matrix of {m} columns")
    c = _prior_counts(prior_counts, m)
    w, it, conv = fit_weights_em(L, prior_counts=c, tol=tol)
    samples = sample_posterior_gibbs(
        jax.random.key(seed), L, alpha=1.0 + c, n_samples=n_samples, burn_in=burn_in, init=w
    )
    held = None
    if heldout_fraction and L.shape[0] >= 10:
        held = held_out_check(L, heldout_fraction, seed=seed, prior_counts=c, tol=tol)
    return ReweightResult(
        names=names,
        structures=structures,
        L=L,
        indices=np.arange(L.shape[0]) if indices is None else np.asarray(indices),
        map_weights=w,
        n_iterations=it,
        converged=conv,
        samples=samples,
        summary=summarize_samples(samples, credible_level),
        heldout=held,
        meta=dict(meta or {}),
    )


def _mask_projector(path: str | os.PathLike, box: int, pixel_size: float) -> MapProjector:
    """The 3-D mask (MRC, thresholded at 0.5) prepared for projection at each particle's pose."""
    vol, voxel = read_map(path)
    if vol.shape != (box, box, box):
        raise InputError(f"{path}: the 3-D mask is {vol.shape} but the particles are {box} pixels")
    if abs(float(voxel) - pixel_size) > 1e-3 * pixel_size:
        raise InputError(
            f"{path}: the 3-D mask has {float(voxel):g} A voxels but the particles {pixel_size:g} A"
        )
    vol = (np.asarray(vol) > 0.5).astype(np.float32)
    return prepare_map_projection(vol, pixel_size, gridding_correction=False)


def _circular_mask(ds: AbstractParticles, mask_radius: float | None):
    """(mask (n, n) float32 or None, radius in pixels or None) for a radius in Angstrom."""
    if mask_radius is None:
        return None, None
    radius_px = float(mask_radius) / ds.pixel_size
    if radius_px < 2:
        raise InputError(f"mask radius {mask_radius} A is under 2 pixels ({ds.pixel_size} A)")
    return circular_mask(ds.box_size, radius_px).astype(jnp.float32), radius_px


def _known_pose_matrix(
    ds: AbstractParticles,
    atoms: list[GaussianAtoms],
    *,
    likelihood: str,
    noise_sigma: float | None,
    mask_radius: float | None,
    mask3d: str | os.PathLike | None,
    apply_ctf: bool,
    pad_factor: float,
    batch_size: int,
    chunk_size: int | None,
    exact: bool,
    psd_sample: int,
    progress: AbstractProgressMeter,
) -> np.ndarray:
    """The likelihood matrix at the particles' poses (masks and coloured noise allowed)."""
    half = max(default_half_width(a, ds.pixel_size) for a in atoms)
    config = ImagingConfig(
        box_size=ds.box_size,
        pixel_size=ds.pixel_size,
        pad_factor=pad_factor,
        apply_ctf=apply_ctf,
        half_width=half,
        chunk_size=chunk_size,
    )
    mask, radius_px = _circular_mask(ds, mask_radius)
    psd = None
    if likelihood.startswith("colored"):
        psd = estimate_psd_from_dataset(ds, radius_px, n_sample=psd_sample)
    projector = None if mask3d is None else _mask_projector(mask3d, ds.box_size, ds.pixel_size)
    opts = LikelihoodConfig(
        kind=likelihood, sigma=noise_sigma, psd=psd, mask=mask, mask3d=projector, exact=exact
    )
    return likelihood_matrix(
        ds, atoms, config, options=opts, batch_size=batch_size, progress=progress
    )


def _dataset(
    particles: str | os.PathLike | AbstractParticles, invert_contrast: bool, unknown_poses: bool
) -> AbstractParticles:
    if isinstance(particles, AbstractParticles):
        ds = particles
    else:
        ds = ParticleDataset(
            particles, invert_contrast=invert_contrast, require_poses=not unknown_poses
        )
    if len(ds) == 0:
        raise InputError(f"{particles}: the STAR file holds no particles")
    return ds


def reweight(
    particles: str | os.PathLike | AbstractParticles,
    models: Sequence[NamedModel],
    *,
    likelihood: str = "marginal",
    noise_sigma: float | None = None,
    mask_radius: float | None = None,
    mask3d: str | os.PathLike | None = None,
    selection: str = "all",
    center: bool = True,
    align_to: AtomicModel | None = None,
    require_same_atoms: bool = True,
    invert_contrast: bool = False,
    apply_ctf: bool = True,
    pad_factor: float = 2.0,
    batch_size: int = 128,
    chunk_size: int | None = None,
    unknown_poses: bool = False,
    max_shift: float | None = None,
    exact: bool = True,
    psd_sample: int = 2000,
    progress: AbstractProgressMeter = NoProgressMeter(),
    **fit_kwargs,
) -> ReweightResult:
    """Reweight ``models`` against particle images.

    Arguments:
        particles: a particle STAR file or a particle set (e.g.
            :class:`~cryoensemble.io.ParticleDataset`).
        models: the ensemble (see :func:`cryoensemble.structure.load_structures`).
        likelihood: "marginal", "white" (needs ``noise_sigma``), "colored" or "colored_white".
        noise_sigma: noise standard deviation (image units) for "white".
        mask_radius: circular mask radius in Angstrom (None: all pixels).
        mask3d: a 3-D mask (MRC, particle box and pixel size) projected at each pose.
        selection, center, align_to, require_same_atoms: see :func:`prepare_atoms`.
        invert_contrast: multiply the images read from ``particles`` (a file) by -1.
        apply_ctf: multiply the model images by each particle's CTF.
        pad_factor: zero-padding factor of the CTF product.
        batch_size: particles read at once.
        chunk_size: images formed at once inside a batch (None: backend default).
        unknown_poses: ignore the particles' poses and marginalise each likelihood over a pose
            search (:func:`cryoensemble.posesearch.marginal_log_likelihood_matrix`; "marginal"
            or "white", without masks).
        max_shift: with ``unknown_poses``, the shift search radius in Angstrom.
        exact: the full marginal formula (False: -N/2 log ||r||^2).
        psd_sample: particles sampled to estimate the noise PSD (coloured likelihoods).
        progress: reports the particles done.
        **fit_kwargs: passed to :func:`reweight_matrix` (prior_counts, n_samples, ...).
    """
    check_likelihood_options(likelihood, noise_sigma, unknown_poses, mask_radius, mask3d)
    ds = _dataset(particles, invert_contrast, unknown_poses)
    atoms, info = prepare_atoms(models, selection, center, align_to, require_same_atoms)
    _prior_counts(fit_kwargs.get("prior_counts"), len(models))  # fail before the heavy work
    if unknown_poses:
        search = PoseSearchConfig(
            kind=likelihood,
            sigma=noise_sigma,
            exact=exact,
            pad_factor=pad_factor,
            apply_ctf=apply_ctf,
            max_shift=max_shift,
        )
        L = marginal_log_likelihood_matrix(ds, atoms, search, progress=progress)
    else:
        L = _known_pose_matrix(
            ds,
            atoms,
            likelihood=likelihood,
            noise_sigma=noise_sigma,
            mask_radius=mask_radius,
            mask3d=mask3d,
            apply_ctf=apply_ctf,
            pad_factor=pad_factor,
            batch_size=batch_size,
            chunk_size=chunk_size,
            exact=exact,
            psd_sample=psd_sample,
            progress=progress,
        )
    meta = {
        "likelihood": likelihood,
        "exact_marginal": exact,
        "mask_radius_angstrom": mask_radius,
        "mask3d": None if mask3d is None else str(mask3d),
        "box_size": ds.box_size,
        "pixel_size": ds.pixel_size,
        "particles": str(getattr(ds, "star_path", particles)),
        "invert_contrast": bool(getattr(ds, "invert_contrast", invert_contrast)),
        "apply_ctf": apply_ctf,
        "unknown_poses": unknown_poses,
        **info,
    }
    names, sources = [m.name for m in models], [m.source for m in models]
    return reweight_matrix(L, names=names, structures=sources, meta=meta, **fit_kwargs)
