"""The atomic model: host-side numpy arrays describing the atoms of one structure."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from cryoensemble.errors import InputError
from cryoensemble.structure._elements import atomic_mass

__all__ = ["AtomicModel", "BACKBONE_NAMES", "selection_indices"]

#: Protein backbone atom names used by the ``"backbone"`` selection.
BACKBONE_NAMES = ("N", "CA", "C", "O")

_PER_ATOM = (
    "elements",
    "atomic_numbers",
    "b_factors",
    "occupancies",
    "atom_names",
    "residue_names",
    "residue_ids",
    "chain_ids",
    "is_hetero",
)


@dataclasses.dataclass(frozen=True, eq=False)
class AtomicModel:
    """Atoms of one model of a structure (numpy arrays, host side).

    Attributes:
        positions: (n, 3) float64 coordinates in Angstrom.
        elements: (n,) capitalised element symbols ('C', 'Ca', 'Zn').
        atomic_numbers: (n,) int atomic numbers Z.
        b_factors: (n,) float64 isotropic B-factors in Angstrom^2.
        occupancies: (n,) float64 occupancies in [0, 1].
        atom_names, residue_names, chain_ids: (n,) str.
        residue_ids: (n,) int residue sequence numbers.
        is_hetero: (n,) bool, True for HETATM records.
        source: the file the model was read from, or "".
    """

    positions: np.ndarray
    elements: np.ndarray
    atomic_numbers: np.ndarray
    b_factors: np.ndarray
    occupancies: np.ndarray
    atom_names: np.ndarray
    residue_names: np.ndarray
    residue_ids: np.ndarray
    chain_ids: np.ndarray
    is_hetero: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise InputError(f"positions must have shape (n, 3), got {pos.shape}")
        object.__setattr__(self, "positions", pos)
        dtypes: dict[str, type] = {"atomic_numbers": np.int64, "residue_ids": np.int64}
        dtypes |= {"is_hetero": bool}
        dtypes |= {"b_factors": np.float64, "occupancies": np.float64}
        for name in _PER_ATOM:
            arr: np.ndarray = np.asarray(getattr(self, name), dtype=dtypes.get(name, str))
            if arr.shape != (pos.shape[0],):
                raise InputError(f"{name} must have shape ({pos.shape[0]},), got {arr.shape}")
            object.__setattr__(self, name, arr)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return int(self.positions.shape[0])

    def __len__(self) -> int:
        return self.n_atoms

    def select(self, mask_or_indices: np.ndarray | Sequence[int] | Sequence[bool]) -> AtomicModel:
        """A new model with the atoms picked by a boolean mask or an integer index array.

        Arguments:
            mask_or_indices: a boolean mask (n,) or integer atom indices.
        """
        idx = np.asarray(mask_or_indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_atoms,):
                raise InputError(f"selection mask must have shape ({self.n_atoms},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.n_atoms or idx.max() >= self.n_atoms):
            raise InputError(f"selection index out of range for a model of {self.n_atoms} atoms")
        fields = {name: getattr(self, name)[idx] for name in _PER_ATOM}
        return AtomicModel(positions=self.positions[idx], source=self.source, **fields)

    def heavy_atoms(self) -> AtomicModel:
        """All atoms except hydrogen."""
        return self.select(self.atomic_numbers > 1)

    def calpha(self) -> AtomicModel:
        """C-alpha atoms: name CA and element carbon (calcium ions are excluded)."""
        return self.select((self.atom_names == "CA") & (self.elements == "C"))

    def chains(self, ids: str | Sequence[str]) -> AtomicModel:
        """Atoms whose chain id is in ``ids``.

        Arguments:
            ids: a single chain id or a sequence of chain ids.
        """
        ids = [ids] if isinstance(ids, str) else list(ids)
        return self.select(np.isin(self.chain_ids, ids))

    def selection(self, spec: str) -> AtomicModel:
        """Atoms selected by ``spec`` (see :func:`selection_indices`).

        Arguments:
            spec: ``"all"``, ``"heavy"``, ``"calpha"``, ``"backbone"`` or ``"chain:A,B"``.
        """
        return self.select(selection_indices(self, spec))

    def center_of_mass(self) -> np.ndarray:
        """Mass-weighted centre (3,) in Angstrom, using standard atomic weights."""
        if self.n_atoms == 0:
            raise InputError("cannot compute the centre of mass of a model with no atoms")
        masses = np.array([atomic_mass(str(e)) for e in self.elements])
        return (masses[:, None] * self.positions).sum(axis=0) / masses.sum()

    def with_positions(self, new_positions: np.ndarray) -> AtomicModel:
        """A copy with the positions replaced.

        Arguments:
            new_positions: (n, 3) coordinates in Angstrom, same atoms and order.
        """
        pos = np.asarray(new_positions, dtype=np.float64)
        if pos.shape != self.positions.shape:
            raise InputError(
                f"new positions must have shape {self.positions.shape}, got {pos.shape}"
            )
        return dataclasses.replace(self, positions=pos)


def _selection_mask(model: AtomicModel, spec: str) -> np.ndarray:
    key = spec.strip()
    if key == "all":
        return np.ones(model.n_atoms, dtype=bool)
    if key == "heavy":
        return model.atomic_numbers > 1
    if key == "calpha":
        return (model.atom_names == "CA") & (model.elements == "C")
    if key == "backbone":
        protein = ~((model.atom_names == "CA") & (model.elements != "C"))
        return np.isin(model.atom_names, BACKBONE_NAMES) & protein
    if key.startswith("chain:"):
        ids = [c.strip() for c in key[len("chain:") :].split(",") if c.strip()]
        if ids:
            return np.isin(model.chain_ids, ids)
    raise InputError(
        f"unknown atom selection {spec!r}; use 'all', 'heavy', 'calpha', 'backbone' or 'chain:A,B'"
    )


def selection_indices(model: AtomicModel, spec: str) -> np.ndarray:
    """Integer indices (sorted, int64) of the atoms of ``model`` selected by ``spec``.

    Raises :class:`InputError` for an unknown spec.

    Arguments:
        model: the model.
        spec: "all", "heavy" (no hydrogens), "calpha" (CA carbons), "backbone" (N, CA, C, O)
            or "chain:A,B" (the listed chain ids).
    """
    return np.flatnonzero(_selection_mask(model, spec)).astype(np.int64)
