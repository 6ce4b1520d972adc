"""Population reweighting of a structural ensemble against particle images (library driver).

:func:`load_structures` reads the structures (files, multi-model files, trajectories) and turns
them into :class:`~cryoensemble.scattering.GaussianAtoms` centred as ``cryoensemble simulate``
centres them; :func:`reweight` computes the likelihood matrix, fits the weights, samples their
posterior, runs the held-out check and returns a :class:`ReweightResult`;
:func:`write_outputs` writes weights.json / weights.csv / likelihood_matrix.npy / the plots.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from cryoensemble.errors import InputError
from cryoensemble.imaging._pipeline import ImagingConfig
from cryoensemble.inference._likelihood_matrix import (
    LikelihoodOptions,
    circular_mask_px,
    likelihood_matrix,
    save_likelihood_matrix,
)
from cryoensemble.inference._posterior import sample_posterior_gibbs, summarize_samples
from cryoensemble.inference._weights import fit_weights_em, held_out_check, responsibilities
from cryoensemble.io._config import to_jsonable
from cryoensemble.projection._atoms import default_half_width
from cryoensemble.scattering._potential import GaussianAtoms, gaussian_atoms

__all__ = [
    "NamedModel",
    "ReweightResult",
    "align_models",
    "load_structures",
    "prepare_atoms",
    "reweight",
    "reweight_matrix",
    "write_outputs",
]

TRAJECTORY_SUFFIXES = {".dcd", ".xtc", ".trr", ".nc", ".h5", ".lh5", ".netcdf", ".binpos"}


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """An atomic model with a display name and the file (and model/frame) it came from."""

    name: str
    source: str
    model: object  # AtomicModel


def _read_trajectory(path: Path, topology: str | None) -> list[NamedModel]:
    from cryoensemble.structure import read_structure

    if topology is None:
        raise InputError(f"{path}: a trajectory needs --topology (a PDB/mmCIF file of its atoms)")
    try:
        import mdtraj
    except ImportError:
        raise InputError(
            f"{path}: reading trajectories needs mdtraj (pip install mdtraj); or convert the "
            "frames to a multi-model PDB file"
        ) from None
    top_model = read_structure(topology)
    try:
        traj = mdtraj.load(str(path), top=str(topology))
    except Exception as err:  # mdtraj raises many types
        raise InputError(f"{path}: cannot read the trajectory ({err})") from None
    if traj.n_atoms != top_model.n_atoms:
        raise InputError(
            f"{path}: the trajectory has {traj.n_atoms} atoms but the topology {topology} has "
            f"{top_model.n_atoms} as read by cryoensemble"
        )
    return [
        NamedModel(f"{path.stem}#{i}", f"{path}#frame{i}", top_model.with_positions(xyz * 10.0))
        for i, xyz in enumerate(traj.xyz)
    ]


def load_structures(paths: Sequence[str | Path], topology: str | None = None) -> list[NamedModel]:
    """Every model of every file in ``paths`` (a multi-model file expands to all its models; a
    trajectory, with ``topology``, to all its frames), in order."""
    from cryoensemble.structure import read_models

    if not paths:
        raise InputError("give at least one structure (--structure FILE)")
    out: list[NamedModel] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"{path}: structure file not found")
        if path.suffix.lower() in TRAJECTORY_SUFFIXES:
            out.extend(_read_trajectory(path, topology))
            continue
        models = read_models(path)
        if len(models) == 1:
            out.append(NamedModel(path.stem, str(path), models[0]))
        else:
            out.extend(
                NamedModel(f"{path.stem}#{i}", f"{path}#model{i}", m) for i, m in enumerate(models)
            )
    names = [m.name for m in out]
    if len(set(names)) != len(names):  # same stem in several folders: use the path
        out = [dataclasses.replace(m, name=m.source) for m in out]
    return out


def align_models(models: list[NamedModel], reference, selection: str) -> tuple[list, list]:
    """Rigidly superpose every model onto ``reference`` (an AtomicModel) using the atoms of
    ``selection``; returns the moved models and the RMSDs (A) after alignment."""
    from cryoensemble.pose import superpose_model

    out, rmsds = [], []
    for nm in models:
        moved, rms = superpose_model(nm.model, reference, selection)
        rmsds.append(rms)
        out.append(dataclasses.replace(nm, model=moved))
    return out, rmsds


def prepare_atoms(
    models: list[NamedModel],
    selection: str = "all",
    center: bool = True,
    align_to=None,
    require_same_atoms: bool = True,
) -> tuple[list[GaussianAtoms], dict]:
    """Gaussian atoms of every model, centred and (optionally) aligned.

    Centring: by default each model's centre of mass over ALL its atoms is subtracted (as
    ``cryoensemble simulate`` does); with ``align_to`` (an AtomicModel) the models are first
    superposed on it and the reference's centre of mass is subtracted from all of them (they
    share its frame). ``center=False`` keeps the coordinates. With ``require_same_atoms`` every
    selection must have the same number of atoms.
    """
    info: dict = {"selection": selection, "center": bool(center)}
    if align_to is not None:
        models, rmsds = align_models(models, align_to, selection)
        info["alignment_rmsd"] = rmsds
    atoms = []
    for nm in models:
        if center:
            com = align_to.center_of_mass() if align_to is not None else nm.model.center_of_mass()
        else:
            com = None
        a = gaussian_atoms(nm.model, selection=selection, center=com)
        if a.n_atoms == 0:
            raise InputError(f"{nm.source}: selection {selection!r} picks no atoms")
        atoms.append(a)
    counts = [a.n_atoms for a in atoms]
    if require_same_atoms and len(set(counts)) > 1:
        desc = ", ".join(f"{nm.name}: {c}" for nm, c in zip(models, counts, strict=True))
        raise InputError(
            f"the structures have different numbers of atoms in selection {selection!r} ({desc}); "
            "an ensemble shares one selection of the same atoms: check the files (hydrogens, "
            "missing residues, ligands) or pass --allow-different-atoms"
        )
    info["n_atoms"] = counts
    return atoms, info


@dataclasses.dataclass
class ReweightResult:
    """Everything :func:`write_outputs` writes."""

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


def reweight_matrix(
    L,
    names: Sequence[str] | None = None,
    structures: Sequence[str] | None = None,
    prior_counts=None,
    credible_level: float = 0.9,
    n_samples: int = 2000,
    burn_in: int = 500,
    seed: int = 0,
    heldout_fraction: float | None = 0.2,
    tol: float = 1e-8,
    indices=None,
    meta: dict | None = None,
) -> ReweightResult:
    """Weights (MAP by EM), their posterior (Gibbs) and the held-out check from a matrix ``L``."""
    L = np.asarray(L)
    m = L.shape[1] if L.ndim == 2 else 0
    names = [f"structure_{i}" for i in range(m)] if names is None else list(names)
    structures = list(names) if structures is None else list(structures)
    if len(names) != m:
        raise InputError(f"{len(names)} structure names for a likelihood matrix of {m} columns")
    c = np.zeros(m) if prior_counts is None else np.asarray(prior_counts, np.float64)
    if c.shape not in ((), (m,)):
        raise InputError(f"prior counts: expected {m} values (one per structure), got {c.size}")
    w, it, conv = fit_weights_em(L, prior_counts=c, tol=tol)
    samples = sample_posterior_gibbs(
        jax.random.key(seed), L, alpha=1.0 + c, n_samples=n_samples, burn_in=burn_in, init=w
    )
    summary = summarize_samples(samples, credible_level)
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
        summary=summary,
        heldout=held,
        meta=dict(meta or {}),
    )


def reweight(
    particles,
    models: list[NamedModel],
    *,
    likelihood: str = "marginal",
    noise_sigma: float | None = None,
    mask_radius: float | None = None,
    mask3d: str | Path | None = None,
    selection: str = "all",
    center: bool = True,
    align_to=None,
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
    progress: bool = True,
    **fit_kwargs,
) -> ReweightResult:
    """Reweight ``models`` against the particles of the STAR file ``particles`` (or a
    :class:`~cryoensemble.io.ParticleDataset`). ``mask_radius`` in Angstrom (None: all pixels).
    With ``unknown_poses`` the particles' poses are not used: each likelihood is marginalised over
    a pose search (:func:`~cryoensemble.pose.marginal_log_likelihood_matrix`; ``max_shift``
    in Angstrom). Remaining keyword arguments go to :func:`reweight_matrix`."""
    from cryoensemble.io import ParticleDataset

    ds = (
        particles
        if hasattr(particles, "iter_batches")
        else ParticleDataset(
            particles, invert_contrast=invert_contrast, require_poses=not unknown_poses
        )
    )
    if len(ds) == 0:
        raise InputError(f"{particles}: the STAR file holds no particles")
    atoms, info = prepare_atoms(models, selection, center, align_to, require_same_atoms)
    half = max(default_half_width(a, ds.pixel_size) for a in atoms)
    config = ImagingConfig(
        box_size=ds.box_size,
        pixel_size=ds.pixel_size,
        pad_factor=pad_factor,
        apply_ctf=apply_ctf,
        half_width=half,
        chunk_size=chunk_size,
    )
    mask = None
    radius_px = None
    if mask_radius is not None:
        radius_px = float(mask_radius) / ds.pixel_size
        if radius_px < 2:
            raise InputError(f"mask radius {mask_radius} A is under 2 pixels ({ds.pixel_size} A)")
        mask = circular_mask_px(ds.box_size, radius_px)
    psd = None
    if likelihood.startswith("colored"):
        from cryoensemble.inference._noise_model import estimate_psd_from_dataset

        psd = estimate_psd_from_dataset(ds, radius_px, n_sample=psd_sample)
    projector = None
    if mask3d is not None:
        projector = _mask_projector(mask3d, ds.box_size, ds.pixel_size)
    opts = LikelihoodOptions(
        kind=likelihood, sigma=noise_sigma, psd=psd, mask=mask, mask3d=projector, exact=exact
    )
    if unknown_poses:
        from cryoensemble.posesearch._search import PoseSearchConfig, marginal_log_likelihood_matrix

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
        L = likelihood_matrix(
            ds, atoms, config, options=opts, batch_size=batch_size, progress=progress
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
    return reweight_matrix(
        L,
        names=[m.name for m in models],
        structures=[m.source for m in models],
        meta=meta,
        **fit_kwargs,
    )


def _mask_projector(path, box: int, pixel_size: float):
    from cryoensemble.io import read_map
    from cryoensemble.projection._maps import prepare_map_projection

    vol, voxel = read_map(path)
    if vol.shape != (box, box, box):
        raise InputError(f"{path}: the 3-D mask is {vol.shape} but the particles are {box} pixels")
    if abs(float(voxel) - pixel_size) > 1e-3 * pixel_size:
        raise InputError(
            f"{path}: the 3-D mask has {float(voxel):g} A voxels but the particles {pixel_size:g} A"
        )
    vol = (np.asarray(vol) > 0.5).astype(np.float32)
    return prepare_map_projection(vol, pixel_size, gridding_correction=False)


def write_outputs(result: ReweightResult, folder, plots: bool = True) -> dict[str, Path]:
    """weights.json, weights.csv, likelihood_matrix.npy (+ particle_indices.npy, .json),
    posterior_samples.npy, weights.png and assignments.png in ``folder``."""
    folder = Path(folder)
    paths = {}
    data = result.to_json()
    paths["json"] = folder / "weights.json"
    paths["json"].write_text(json.dumps(data, indent=2, default=to_jsonable) + "\n")
    paths["csv"] = folder / "weights.csv"
    s = result.summary
    with open(paths["csv"], "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["index", "name", "structure", "weight", "lower", "upper", "map", "std"])
        for i, name in enumerate(result.names):
            wr.writerow(
                [
                    i,
                    name,
                    result.structures[i],
                    f"{s['mean'][i]:.6g}",
                    f"{s['lower'][i]:.6g}",
                    f"{s['upper'][i]:.6g}",
                    f"{result.map_weights[i]:.6g}",
                    f"{s['std'][i]:.6g}",
                ]
            )
    meta = {"names": result.names, "structures": result.structures, **result.meta}
    paths["L"] = save_likelihood_matrix(folder, result.L, result.indices, meta)
    paths["samples"] = folder / "posterior_samples.npy"
    np.save(paths["samples"], result.samples.astype(np.float32))
    if plots:
        paths.update(_plots(result, folder))
    return paths


def _plots(result: ReweightResult, folder: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    s = result.summary
    m = len(result.names)
    x = np.arange(m)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * m + 2), 3.5))
    err = np.vstack([s["mean"] - s["lower"], s["upper"] - s["mean"]])
    ax.bar(x, s["mean"], yerr=np.maximum(err, 0), capsize=4, color="tab:blue", alpha=0.8)
    ax.plot(x, result.map_weights, "k_", markersize=14, label="MAP")
    ax.set_xticks(x, result.names, rotation=45 if m > 4 else 0, ha="right" if m > 4 else "center")
    ax.set_ylabel("weight")
    ax.set_title(f"posterior mean, {int(round(100 * s['credible_level']))}% interval")
    ax.legend(loc="best")
    fig.tight_layout()
    out = {"weights_png": folder / "weights.png"}
    fig.savefig(out["weights_png"], dpi=120)
    plt.close(fig)

    r = responsibilities(result.L, s["mean"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(r.max(axis=1), bins=np.linspace(1.0 / m, 1.0, 41), color="tab:orange")
    ax.set_xlabel("max posterior assignment probability")
    ax.set_ylabel("particles")
    ax.set_yscale("log")
    fig.tight_layout()
    out["assignments_png"] = folder / "assignments.png"
    fig.savefig(out["assignments_png"], dpi=120)
    plt.close(fig)
    return out
