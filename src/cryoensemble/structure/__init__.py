"""Atomic models: reading PDB/mmCIF files, element inference, selections and PDB writing."""

from cryoensemble.structure._elements import (
    ATOMIC_MASSES,
    atomic_mass,
    atomic_number,
    infer_element,
    normalize_symbol,
)
from cryoensemble.structure._io import read_models, read_structure, write_multimodel_pdb, write_pdb
from cryoensemble.structure._model import AtomicModel, selection_indices

__all__ = [
    "ATOMIC_MASSES",
    "AtomicModel",
    "atomic_mass",
    "atomic_number",
    "infer_element",
    "normalize_symbol",
    "read_models",
    "read_structure",
    "selection_indices",
    "write_multimodel_pdb",
    "write_pdb",
]
