"""Loading the structures of an ensemble: files, multi-model files and trajectories, each model
with a display name and its source, and their rigid alignment onto a reference.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from cryoensemble.errors import InputError
from cryoensemble.pose import superpose_model
from cryoensemble.structure._io import read_models, read_structure
from cryoensemble.structure._model import AtomicModel

__all__ = ["TRAJECTORY_SUFFIXES", "NamedModel", "align_models", "load_structures"]

#: File suffixes read as trajectories (with mdtraj and a topology file).
TRAJECTORY_SUFFIXES = frozenset(
    {".dcd", ".xtc", ".trr", ".nc", ".h5", ".lh5", ".netcdf", ".binpos"}
)


@dataclasses.dataclass(frozen=True)
class NamedModel:
    """An atomic model with a display name and the file (and model or frame) it came from.

    Arguments:
        name: display name (the file stem, ``stem#i`` for model/frame i of a file).
        source: the file path, with ``#modelI`` / ``#frameI`` for one model or frame of it.
        model: the atomic model (coordinates in Angstrom).
    """

    name: str
    source: str
    model: AtomicModel


def _read_trajectory(path: Path, topology: str | os.PathLike | None) -> list[NamedModel]:
    """Every frame of a trajectory (nm in mdtraj, converted to Angstrom) on the topology's atoms."""
    if topology is None:
        raise InputError(f"{path}: a trajectory needs --topology (a PDB/mmCIF file of its atoms)")
    try:
        import mdtraj  # optional dependency: only trajectory files need it
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


def _read_file(path: Path, topology: str | os.PathLike | None) -> list[NamedModel]:
    if not path.exists():
        raise InputError(f"{path}: structure file not found")
    if path.suffix.lower() in TRAJECTORY_SUFFIXES:
        return _read_trajectory(path, topology)
    models = read_models(path)
    if len(models) == 1:
        return [NamedModel(path.stem, str(path), models[0])]
    return [NamedModel(f"{path.stem}#{i}", f"{path}#model{i}", m) for i, m in enumerate(models)]


def load_structures(
    paths: Sequence[str | os.PathLike], topology: str | os.PathLike | None = None
) -> list[NamedModel]:
    """Every model of every file in ``paths``, in order.

    A multi-model PDB/mmCIF file expands to all its models; a trajectory (``.dcd``, ``.xtc``, ...;
    needs mdtraj and ``topology``) to all its frames. Names are the file stems (``stem#i`` for the
    models of one file), or the sources when two files share a stem.

    Arguments:
        paths: structure files (PDB, mmCIF or trajectories).
        topology: PDB/mmCIF file of the trajectories' atoms (None: no trajectories allowed).
    """
    if not paths:
        raise InputError("give at least one structure (--structure FILE)")
    out = [nm for p in paths for nm in _read_file(Path(p), topology)]
    names = [m.name for m in out]
    if len(set(names)) != len(names):  # same stem in several folders: use the path
        out = [dataclasses.replace(m, name=m.source) for m in out]
    return out


def align_models(
    models: Sequence[NamedModel], reference: AtomicModel, selection: str = "heavy"
) -> tuple[list[NamedModel], list[float]]:
    """Rigidly superpose every model onto ``reference`` (Kabsch, on the atoms of ``selection``).

    Arguments:
        models: the models to move.
        reference: the model whose frame they are moved into.
        selection: atoms fitted ("all", "heavy", "calpha", "backbone", "chain:A,B"); the
            selections of every model and of the reference must hold the same atoms in order.

    Returns:
        The moved models and the RMSD (Angstrom) of each after alignment.
    """
    out, rmsds = [], []
    for nm in models:
        moved, rms = superpose_model(nm.model, reference, selection)
        rmsds.append(float(rms))
        out.append(dataclasses.replace(nm, model=moved))
    return out, rmsds
