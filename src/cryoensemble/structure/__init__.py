"""Atomic models: reading PDB/mmCIF files, element inference, selections and PDB writing.

Host-side numpy (``AtomicModel``); positions in Angstrom. The only stage package that writes files:
it owns coordinate files (PDB). See ``docs/conventions.md``.
"""

from cryoensemble.structure._elements import ATOMIC_MASSES as ATOMIC_MASSES
from cryoensemble.structure._elements import atomic_mass as atomic_mass
from cryoensemble.structure._elements import atomic_number as atomic_number
from cryoensemble.structure._elements import infer_element as infer_element
from cryoensemble.structure._elements import normalize_symbol as normalize_symbol
from cryoensemble.structure._io import read_models as read_models
from cryoensemble.structure._io import read_structure as read_structure
from cryoensemble.structure._io import write_multimodel_pdb as write_multimodel_pdb
from cryoensemble.structure._io import write_pdb as write_pdb
from cryoensemble.structure._load import NamedModel as NamedModel
from cryoensemble.structure._load import align_models as align_models
from cryoensemble.structure._load import load_structures as load_structures
from cryoensemble.structure._model import AtomicModel as AtomicModel
from cryoensemble.structure._model import selection_indices as selection_indices

__all__ = [
    "ATOMIC_MASSES",
    "AtomicModel",
    "NamedModel",
    "align_models",
    "atomic_mass",
    "atomic_number",
    "infer_element",
    "load_structures",
    "normalize_symbol",
    "read_models",
    "read_structure",
    "selection_indices",
    "write_multimodel_pdb",
    "write_pdb",
]
