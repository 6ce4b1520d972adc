"""``cryoensemble optimize`` as a library call: read and check the inputs of an
:class:`OptimizeConfig`, build the optimizer and its prior, run it with a checkpoint per iteration
in the output folder, then write the outputs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from jax.sharding import Mesh

from cryoensemble.ensemble import (
    LangevinProjector,
    NoProjector,
    OpenMMProjector,
    PriorProjector,
    RigidCarry,
    build_elastic_network,
    load_user_energy,
)
from cryoensemble.errors import InputError
from cryoensemble.io import ParticleDataset
from cryoensemble.io._outputs import write_provenance
from cryoensemble.pose import rigid_transform, rmsd
from cryoensemble.progress import AbstractProgressMeter, NoProgressMeter
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import AtomicModel, read_structure, selection_indices
from cryoensemble.workflows.optimize._checkpoint import CHECKPOINT_NAME, load_checkpoint
from cryoensemble.workflows.optimize._config import OptimizeConfig
from cryoensemble.workflows.optimize._optimizer import EnsembleOptimizer, OptimizeResult
from cryoensemble.workflows.optimize._outputs import write_run_outputs

__all__ = ["PreparedRun", "prepare_run", "run"]


@dataclasses.dataclass
class PreparedRun:
    """An :class:`EnsembleOptimizer` built from an :class:`OptimizeConfig`, with its models.

    Attributes:
        optimizer: the optimizer.
        template: the first walker's model (atom order of the outputs).
        offset: (3,) A added back to positions when writing PDBs (the centre removed).
        dataset: the particles.
        info: facts about the inputs for the log (atom counts, start alignment, network sizes).
    """

    optimizer: EnsembleOptimizer
    template: AtomicModel
    offset: np.ndarray
    dataset: ParticleDataset
    info: dict


def _same_topology(models: Sequence[AtomicModel], paths: Sequence, what: str) -> None:
    first, p0 = models[0], paths[0]
    for mdl, p in zip(models[1:], paths[1:], strict=True):
        if mdl.n_atoms != first.n_atoms:
            raise InputError(
                f"{p}: {mdl.n_atoms} atoms but {p0} has {first.n_atoms}; all {what} must have the "
                "same atoms in the same order (same topology)"
            )
        for field in ("atom_names", "residue_names", "residue_ids", "chain_ids"):
            bad = np.flatnonzero(getattr(first, field) != getattr(mdl, field))
            if len(bad):
                i = int(bad[0])
                raise InputError(
                    f"{p}: atom {i + 1} is {mdl.atom_names[i]} {mdl.residue_names[i]} "
                    f"{mdl.chain_ids[i]}{mdl.residue_ids[i]} but in {p0} it is "
                    f"{first.atom_names[i]} {first.residue_names[i]} {first.chain_ids[i]}"
                    f"{first.residue_ids[i]}; all {what} must have the same topology"
                )


def _check_files(cfg: OptimizeConfig) -> None:
    if not Path(cfg.particles).exists():
        raise InputError(f"{cfg.particles}: particle STAR file not found")
    for p in [*cfg.walkers, *(cfg.ground_truth or []), *([cfg.reference] if cfg.reference else [])]:
        if not Path(p).exists():
            raise InputError(f"{p}: structure file not found")


def _ground_truth(
    cfg: OptimizeConfig, template: AtomicModel, rmsd_index: np.ndarray
) -> tuple[list[np.ndarray], list[str]]:
    """The true states' ``rmsd_selection`` atoms (A) and names."""
    gt, names = [], []
    for p in cfg.ground_truth or []:
        g = read_structure(p)
        gi = selection_indices(g, cfg.rmsd_selection)
        if len(gi) != len(rmsd_index) or np.any(
            g.atom_names[gi] != template.atom_names[rmsd_index]
        ):
            raise InputError(
                f"{p}: its {cfg.rmsd_selection!r} atoms ({len(gi)}) do not match the walkers' "
                f"({len(rmsd_index)}); the ground truth needs the same atoms"
            )
        gt.append(g.positions[gi])
        names.append(Path(p).stem)
    return gt, names


def _align_start(start: np.ndarray, ref_pos: np.ndarray, sel: np.ndarray) -> list[float]:
    """Superpose every starting walker (in place) on the reference; the RMSDs (A)."""
    rms = []
    for m in range(len(start)):
        r, t = rigid_transform(start[m][sel], ref_pos[sel], method="kabsch")
        start[m] = start[m] @ r.T + t
        rms.append(float(rmsd(start[m][sel], ref_pos[sel])))
    return rms


def _projector(
    cfg: OptimizeConfig,
    template: AtomicModel,
    start: np.ndarray,
    ref_pos: np.ndarray,
    sel: np.ndarray,
    info: dict[str, Any],
) -> PriorProjector:
    """The prior projector the configuration asks for (elastic networks built here)."""
    pc = cfg.projector
    if pc.kind == "openmm":  # raises InputError naming the extra when OpenMM is missing
        return OpenMMProjector(template, **{"selection": sel, **pc.openmm.options})
    carry = None
    if len(sel) < template.n_atoms:
        carry = RigidCarry(start[0], template.chain_ids, template.residue_ids, sel)
    if pc.kind == "none":
        return NoProjector(carry)
    lc = pc.langevin
    networks = None
    if lc.energy == "elastic":
        src = [ref_pos] if lc.elastic.reference == "reference" else list(start)
        networks = [
            build_elastic_network(
                x[sel], template.residue_ids[sel], template.chain_ids[sel], lc.elastic
            )
            for x in src
        ]
        info["elastic_network"] = [
            {"local_springs": len(n.local_pairs), "contacts": len(n.contact_pairs)}
            for n in networks
        ]
    user = load_user_energy(lc.user_energy) if lc.user_energy else None
    return LangevinProjector(lc, networks, user, carry)


def prepare_run(
    cfg: OptimizeConfig, mesh: Mesh | None = None, log: Callable[[str], None] | None = None
) -> PreparedRun:
    """Read and validate every input of ``cfg`` and build the optimizer.

    Raises :class:`InputError` before any output is written.

    Arguments:
        cfg: the run's configuration.
        mesh: a 1-D "particles" device mesh (default: all local devices if there are several).
        log: called with one line of text per iteration.
    """
    _check_files(cfg)
    models = [read_structure(p) for p in cfg.walkers]
    _same_topology(models, cfg.walkers, "walkers")
    template = models[0]
    ref_path = cfg.reference or cfg.walkers[0]
    reference = read_structure(ref_path)
    _same_topology([template, reference], [cfg.walkers[0], ref_path], "walkers and the reference")
    sel = selection_indices(template, cfg.selection)
    if len(sel) == 0:
        raise InputError(f"selection {cfg.selection!r} picks no atoms of {cfg.walkers[0]}")
    offset = reference.center_of_mass() if cfg.center else np.zeros(3)
    ref_pos = reference.positions - offset
    start = np.stack([m.positions - offset for m in models])
    info: dict[str, Any] = {"n_selected": int(len(sel)), "n_atoms": int(template.n_atoms)}
    if cfg.align_start:
        info["start_alignment_rmsd"] = _align_start(start, ref_pos, sel)
    rmsd_index = selection_indices(template, cfg.rmsd_selection)
    gt, gt_names = _ground_truth(cfg, template, rmsd_index)
    dataset = ParticleDataset(
        cfg.particles,
        invert_contrast=cfg.invert_contrast,
        require_poses=True,
        pixel_size=cfg.pixel_size,
    )
    if len(dataset) == 0:
        raise InputError(f"{cfg.particles}: the STAR file holds no particles")
    projector = _projector(cfg, template, start, ref_pos, sel, info)
    opt = EnsembleOptimizer(
        cfg,
        dataset,
        gaussian_atoms(template, selection=cfg.selection),
        start,
        sel,
        projector,
        reference=ref_pos[sel],
        ground_truth=gt or None,
        ground_truth_names=gt_names or None,
        rmsd_index=rmsd_index,
        apply_ctf=cfg.apply_ctf,
        pad_factor=cfg.pad_factor,
        chunk_size=cfg.chunk_size,
        names=[f"walker_{m}" for m in range(len(start))],
        mesh=mesh,
        log=log,
    )
    return PreparedRun(opt, template, offset, dataset, info)


def _file_logger(path: Path, name: str) -> tuple[logging.Logger, logging.Handler]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    return logger, handler


def _prepare_folder(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not (resume or overwrite):
        raise InputError(f"output {out} already exists; pass --resume to continue or --overwrite")
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")


def run(
    config: OptimizeConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: AbstractProgressMeter = NoProgressMeter(),
    mesh: Mesh | None = None,
    stop_after: int | None = None,
    command: str = "optimize",
) -> OptimizeResult:
    """The whole ``cryoensemble optimize``: validate the inputs, prepare ``out``, run with a
    checkpoint per iteration, then write the outputs (once every iteration is done).

    ``out`` is refused if it exists, unless ``resume`` (continue from its checkpoint, or start
    when it has none; a checkpoint of other settings or inputs is refused before anything is
    written) or ``overwrite`` (start again). Writes optimize.log, config.yaml, provenance.json,
    checkpoint.npz and the outputs of :func:`write_run_outputs`.

    Arguments:
        config: the run's configuration.
        out: the output folder.
        resume: continue the run in ``out``.
        overwrite: replace an existing ``out``.
        progress: the progress meter.
        mesh: a 1-D "particles" device mesh (default: all local devices if there are several).
        stop_after: stop after that many outer iterations in total (tests of resuming).
        command: the command recorded in provenance.json.
    """
    out = Path(out)
    _prepare_folder(out, resume, overwrite)
    lines: list[str] = []
    prep = prepare_run(config, mesh=mesh, log=lines.append)  # validates everything first
    opt = prep.optimizer
    checkpoint = None
    if resume and (out / CHECKPOINT_NAME).exists():
        checkpoint = load_checkpoint(out, fingerprint=opt.fingerprint)
    if out.exists() and overwrite and checkpoint is None:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    logger, handler = _file_logger(out / "optimize.log", f"cryoensemble.optimize.{id(prep)}")
    try:
        opt.log = logger.info
        for line in [*lines, f"inputs: {json.dumps(prep.info, default=str)}"]:
            logger.info(line)
        (out / "config.yaml").write_text(
            "# effective configuration (cryoensemble optimize --config config.yaml reproduces it)\n"
            + yaml.safe_dump(config.to_dict(), sort_keys=False)
        )
        write_provenance(out, command, config.to_dict(), config.seed)
        result = opt.run(
            folder=out, checkpoint=checkpoint, progress=progress, stop_after=stop_after
        )
        if len(result.history) == config.iterations:
            particles = getattr(prep.dataset, "star_path", config.particles)
            meta = {"particles": str(particles), "selection": config.selection}
            gt_names = opt.ground_truth_names if opt.ground_truth else ()
            write_run_outputs(
                result, out, prep.template, prep.offset, ground_truth_names=gt_names, meta=meta
            )
            logger.info(f"finished; final weights {np.round(result.weights, 4).tolist()}")
    finally:
        logger.removeHandler(handler)
        handler.close()
    return result
