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
from cryoensemble.posesearch import (
    LocalPoseConfig,
    PoseSearchConfig,
    local_marginal_with_estimated_prior,
    marginal_log_likelihood_matrix,
)
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.projection import MapProjector, default_half_width, prepare_map_projection
from cryoensemble.scattering import GaussianAtoms
from cryoensemble.structure import AtomicModel, NamedModel
from cryoensemble.workflows._noise import (
    choose_likelihood,
    estimate_spectra,
    spectra_record,
)
from cryoensemble.workflows.reweight._atoms import prepare_atoms
from cryoensemble.workflows.reweight._config import check_likelihood_options, check_local_poses

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
    radius_px = ds.mask_radius_px(mask_radius, "mask_radius")  # 2 px <= radius <= box / 2
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
    progress: AbstractProgressMeter,
) -> tuple[np.ndarray, dict]:
    """The likelihood matrix at the particles' poses (masks and coloured noise allowed), and
    what the outputs record about the noise spectra."""
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
    spectra, record = None, {}
    if likelihood.startswith("colored"):
        spectra = estimate_spectra(ds, radius_px, progress)
        record = spectra_record(spectra)
    projector = None if mask3d is None else _mask_projector(mask3d, ds.box_size, ds.pixel_size)
    opts = LikelihoodConfig(
        kind=likelihood,
        sigma=noise_sigma,
        spectra=spectra,
        mask=mask,
        mask3d=projector,
        exact=exact,
    )
    L = likelihood_matrix(ds, atoms, config, options=opts, batch_size=batch_size, progress=progress)
    return L, record


def _exact_poses(ds: AbstractParticles) -> bool:
    """Whether the given poses are exact: in-memory particles, or a cryoensemble simulation
    (ground-truth ``cryoensembleStructureIndex``) that recorded no pose error
    (``cryoensembleTrue*`` columns)."""
    table = getattr(ds, "table", None)
    if table is None:
        return True
    columns = [str(c) for c in table.particles.columns]
    simulated = "cryoensembleStructureIndex" in columns
    return simulated and not any(c.startswith("cryoensembleTrue") for c in columns)


def _local_poses_on(
    local_poses: str, ds: AbstractParticles, likelihood: str, mask_radius, mask3d
) -> bool:
    if local_poses != "auto":
        return local_poses == "on"
    supported = not mask_radius and mask3d is None
    return supported and not _exact_poses(ds)


def _local_pose_matrix(
    ds: AbstractParticles,
    atoms: list[GaussianAtoms],
    likelihood: str,
    noise_sigma: float | None,
    exact: bool,
    apply_ctf: bool,
    progress: AbstractProgressMeter,
) -> tuple[np.ndarray, dict]:
    """The local pose-marginalised matrix (widths estimated from the data; coloured kinds
    whitened by the per-micrograph spectra) and what the outputs record about it."""
    spectra, record = None, {}
    if likelihood.startswith("colored"):
        spectra = estimate_spectra(ds, None, progress)
        record = spectra_record(spectra)
    white = likelihood in ("white", "colored_white")
    sigma = (1.0 if likelihood == "colored_white" else noise_sigma) if white else None
    # Cost: 33 rotations x half-pixel shifts per pair; on images band-limited to 5 A with an
    # unpadded template grid it is ~11x the known-pose path (78x at full band, pad 2; see
    # docs/pose_search.md), and the signal of low-SNR stacks beyond 5 A is small.
    local = LocalPoseConfig(
        kind="white" if white else "marginal", sigma=sigma, exact=exact, pad_factor=1.0,
        apply_ctf=apply_ctf, band_limit=5.0,
    )  # fmt: skip
    L, estimate = local_marginal_with_estimated_prior(
        ds, atoms, local, psd=spectra, progress=progress
    )
    return L, {**record, "local_poses": estimate.to_json()}


def _dataset(
    particles: str | os.PathLike | AbstractParticles,
    invert_contrast: bool,
    unknown_poses: bool,
    pixel_size: float | None = None,
) -> AbstractParticles:
    if isinstance(particles, AbstractParticles):
        if pixel_size is not None and abs(pixel_size - particles.pixel_size) > 1e-4 * pixel_size:
            raise InputError(
                f"pixel_size = {pixel_size:g} A: give it to ParticleDataset(..., pixel_size=) "
                f"(these particles are at {particles.pixel_size:g} A)"
            )
        ds = particles
    else:
        ds = ParticleDataset(
            particles,
            invert_contrast=invert_contrast,
            require_poses=not unknown_poses,
            pixel_size=pixel_size,
        )
    if len(ds) == 0:
        raise InputError(f"{particles}: the STAR file holds no particles")
    return ds


def reweight(
    particles: str | os.PathLike | AbstractParticles,
    models: Sequence[NamedModel],
    *,
    likelihood: str = "auto",
    noise_sigma: float | None = None,
    mask_radius: float | None = None,
    mask3d: str | os.PathLike | None = None,
    selection: str = "all",
    center: bool = True,
    align_to: AtomicModel | None = None,
    require_same_atoms: bool = True,
    invert_contrast: bool = False,
    pixel_size: float | None = None,
    apply_ctf: bool = True,
    pad_factor: float = 2.0,
    batch_size: int = 128,
    chunk_size: int | None = None,
    unknown_poses: bool = False,
    max_shift: float | None = None,
    local_poses: str = "auto",
    exact: bool = True,
    progress: AbstractProgressMeter = NoProgressMeter(),
    **fit_kwargs,
) -> ReweightResult:
    """Reweight ``models`` against particle images.

    Arguments:
        particles: a particle STAR file or a particle set (e.g.
            :class:`~cryoensemble.io.ParticleDataset`).
        models: the ensemble (see :func:`cryoensemble.structure.load_structures`).
        likelihood: "auto" (default: "colored" with the per-micrograph noise spectra estimated
            from the stack, or "marginal" when the images are known to be white or with
            ``unknown_poses``; see :mod:`cryoensemble.workflows._noise`), "marginal", "white"
            (needs ``noise_sigma``), "colored" or "colored_white" (whitened by the estimated
            per-particle spectra).
        noise_sigma: noise standard deviation (image units) for "white".
        mask_radius: circular mask radius in Angstrom (None: all pixels).
        mask3d: a 3-D mask (MRC, particle box and pixel size) projected at each pose.
        selection, center, align_to, require_same_atoms: see :func:`prepare_atoms`.
        invert_contrast: multiply the images read from ``particles`` (a file) by -1.
        pixel_size: read ``particles`` (a file) at this pixel size (Angstrom), Fourier-cropped
            on the fly (see :class:`~cryoensemble.io.ParticleDataset`); None: the stack's.
        apply_ctf: multiply the model images by each particle's CTF.
        pad_factor: zero-padding factor of the CTF product.
        batch_size: particles read at once.
        chunk_size: images formed at once inside a batch (None: backend default).
        unknown_poses: ignore the particles' poses and marginalise each likelihood over a pose
            search (:func:`cryoensemble.posesearch.marginal_log_likelihood_matrix`; "marginal"
            or "white", without masks).
        max_shift: with ``unknown_poses``, the shift search radius in Angstrom.
        local_poses: "on": marginalise over a neighbourhood of each given pose, widths estimated
            from the data (:func:`cryoensemble.posesearch.local_marginal_with_estimated_prior`);
            "auto": on for a STAR file unless :func:`_exact_poses` (or masks);
            "off": the given poses are exact.
        exact: the full marginal formula (False: -N/2 log ||r||^2).
        progress: reports the particles done.
        **fit_kwargs: passed to :func:`reweight_matrix` (prior_counts, n_samples, ...).
    """
    check_likelihood_options(likelihood, noise_sigma, unknown_poses, mask_radius, mask3d)
    check_local_poses(local_poses, likelihood, mask_radius, mask3d)
    ds = _dataset(particles, invert_contrast, unknown_poses, pixel_size)
    atoms, info = prepare_atoms(models, selection, center, align_to, require_same_atoms)
    _prior_counts(fit_kwargs.get("prior_counts"), len(models))  # fail before the heavy work
    # the global pose search has no whitening: "auto" falls back to the marginal likelihood there
    whitening = not unknown_poses
    choice = choose_likelihood(likelihood, ds, coloured_available=whitening)
    noise_record: dict = {}
    if unknown_poses:
        search = PoseSearchConfig(
            kind=choice.kind,
            sigma=noise_sigma,
            exact=exact,
            pad_factor=pad_factor,
            apply_ctf=apply_ctf,
            max_shift=max_shift,
        )
        L = marginal_log_likelihood_matrix(ds, atoms, search, progress=progress)
    elif _local_poses_on(local_poses, ds, choice.kind, mask_radius, mask3d):
        L, noise_record = _local_pose_matrix(
            ds, atoms, choice.kind, noise_sigma, exact, apply_ctf, progress
        )
    else:
        L, noise_record = _known_pose_matrix(
            ds,
            atoms,
            likelihood=choice.kind,
            noise_sigma=noise_sigma,
            mask_radius=mask_radius,
            mask3d=mask3d,
            apply_ctf=apply_ctf,
            pad_factor=pad_factor,
            batch_size=batch_size,
            chunk_size=chunk_size,
            exact=exact,
            progress=progress,
        )
    meta = {
        **choice.record(),
        **noise_record,
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
