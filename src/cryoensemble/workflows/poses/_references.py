"""The references of a pose search from files: maps (MRC) as volumes, atomic models as Gaussian
atoms."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cryoensemble.errors import InputError
from cryoensemble.io import read_map
from cryoensemble.scattering import GaussianAtoms
from cryoensemble.structure import load_structures
from cryoensemble.workflows.reweight import prepare_atoms

__all__ = ["MAP_SUFFIXES", "References", "load_references"]

#: File suffixes read as maps.
MAP_SUFFIXES = frozenset({".mrc", ".map", ".mrcs", ".ccp4"})


@dataclasses.dataclass
class References:
    """The structures searched against.

    Arguments:
        names: display names (file stems; ``stem#i`` for the models of a multi-model file).
        sources: the files (with ``#modelI``).
        references: volumes (N, N, N) for maps, :class:`~cryoensemble.scattering.GaussianAtoms`
            for models.
    """

    names: list[str]
    sources: list[str]
    references: list[GaussianAtoms | np.ndarray]


def _read_volume(path: Path, box: int, pixel_size: float) -> np.ndarray:
    vol, voxel = read_map(path)
    if vol.shape != (box, box, box):
        raise InputError(
            f"{path}: the map is {vol.shape} voxels but the particles are {box} pixels"
        )
    if abs(float(voxel) - pixel_size) > 1e-3 * pixel_size:
        raise InputError(
            f"{path}: the map has {float(voxel):g} A voxels but the particles {pixel_size:g} A"
        )
    return np.asarray(vol)


def load_references(
    paths: Sequence[str | os.PathLike],
    box_size: int,
    pixel_size: float,
    selection: str = "all",
    center: bool = True,
) -> References:
    """Maps and models of ``paths``, in order (a multi-model file gives all its models).

    Arguments:
        paths: MRC maps (``.mrc``, ``.map``, ``.mrcs``, ``.ccp4``) or PDB/mmCIF files.
        box_size: the particles' box (pixels); maps must have it.
        pixel_size: the particles' pixel size (Angstrom); maps must have it as voxel size.
        selection: atoms of the models imaged.
        center: subtract each model's centre of mass.
    """
    refs = References([], [], [])
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"{path}: structure file not found")
        if path.suffix.lower() in MAP_SUFFIXES:
            refs.names.append(path.stem)
            refs.sources.append(str(path))
            refs.references.append(_read_volume(path, box_size, pixel_size))
            continue
        models = load_structures([path])
        atoms, _ = prepare_atoms(models, selection, center, require_same_atoms=False)
        refs.names += [m.name for m in models]
        refs.sources += [m.source for m in models]
        refs.references += atoms
    return refs
