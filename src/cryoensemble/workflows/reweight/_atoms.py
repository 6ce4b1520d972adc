"""The Gaussian atoms of an ensemble's models, centred (and optionally aligned) as
``cryoensemble simulate`` centres them; shared by the reweight and poses workflows."""

from __future__ import annotations

from collections.abc import Sequence

from cryoensemble.errors import InputError
from cryoensemble.scattering import GaussianAtoms, gaussian_atoms
from cryoensemble.structure import AtomicModel, NamedModel, align_models

__all__ = ["prepare_atoms"]


def _check_same_atoms(models: Sequence[NamedModel], counts: list[int], selection: str) -> None:
    if len(set(counts)) > 1:
        desc = ", ".join(f"{nm.name}: {c}" for nm, c in zip(models, counts, strict=True))
        raise InputError(
            f"the structures have different numbers of atoms in selection {selection!r} ({desc}); "
            "an ensemble shares one selection of the same atoms: check the files (hydrogens, "
            "missing residues, ligands) or pass --allow-different-atoms"
        )


def prepare_atoms(
    models: Sequence[NamedModel],
    selection: str = "all",
    center: bool = True,
    align_to: AtomicModel | None = None,
    require_same_atoms: bool = True,
) -> tuple[list[GaussianAtoms], dict]:
    """Gaussian atoms of every model, centred and (optionally) aligned.

    Centring: by default each model's centre of mass over ALL its atoms is subtracted (as
    ``cryoensemble simulate`` does); with ``align_to`` the models are first superposed on it and
    the reference's centre of mass is subtracted from all of them (they share its frame).

    Arguments:
        models: the ensemble (see :func:`cryoensemble.structure.load_structures`).
        selection: atoms imaged ("all", "heavy", "calpha", "backbone", "chain:A,B"); also the
            atoms fitted by the alignment.
        center: subtract the centre of mass (False: keep the files' coordinates, Angstrom).
        align_to: reference model to superpose every model onto first (None: no alignment).
        require_same_atoms: every selection must hold the same number of atoms.

    Returns:
        The atoms, and a record: selection, center, n_atoms and (with ``align_to``) the
        alignment RMSDs in Angstrom.
    """
    info: dict = {"selection": selection, "center": bool(center)}
    if align_to is not None:
        models, info["alignment_rmsd"] = align_models(models, align_to, selection)
    atoms = []
    for nm in models:
        com = (align_to or nm.model).center_of_mass() if center else None
        atoms.append(gaussian_atoms(nm.model, selection=selection, center=com))
    info["n_atoms"] = [a.n_atoms for a in atoms]
    if require_same_atoms:
        _check_same_atoms(models, info["n_atoms"], selection)
    return atoms, info
