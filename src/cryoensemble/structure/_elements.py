"""Chemical elements: symbols, atomic numbers, masses, and element inference from atom names.

Molecular-dynamics programs (CHARMM, AMBER, GROMACS, NAMD) often write PDB files with an
empty element column (columns 77-78). Guessing the element from the atom name the way generic
readers do is wrong for biomolecules: ``CA`` is a C-alpha carbon, not calcium, and ``HG1`` is a
hydrogen, not mercury. :func:`infer_element` applies residue-aware rules instead and raises
:class:`~cryoensemble.errors.InputError` when the element cannot be determined safely.
"""

from __future__ import annotations

import re

import gemmi

from cryoensemble.errors import InputError

__all__ = [
    "ATOMIC_MASSES",
    "ION_RESIDUES",
    "STANDARD_RESIDUES",
    "atomic_mass",
    "atomic_number",
    "infer_element",
    "normalize_symbol",
]

#: Standard atomic weights (IUPAC, conventional values) in dalton for the common elements.
ATOMIC_MASSES: dict[str, float] = {
    "H": 1.008, "He": 4.0026, "Li": 6.94, "Be": 9.0122, "B": 10.81, "C": 12.011,
    "N": 14.007, "O": 15.999, "F": 18.998, "Ne": 20.180, "Na": 22.990, "Mg": 24.305,
    "Al": 26.982, "Si": 28.085, "P": 30.974, "S": 32.06, "Cl": 35.45, "Ar": 39.948,
    "K": 39.098, "Ca": 40.078, "Sc": 44.956, "Ti": 47.867, "V": 50.942, "Cr": 51.996,
    "Mn": 54.938, "Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Cu": 63.546, "Zn": 65.38,
    "Ga": 69.723, "Ge": 72.630, "As": 74.922, "Se": 78.971, "Br": 79.904, "Kr": 83.798,
    "Rb": 85.468, "Sr": 87.62, "Mo": 95.95, "Ag": 107.87, "Cd": 112.41, "I": 126.90,
    "Cs": 132.91, "Ba": 137.33, "W": 183.84, "Pt": 195.08, "Au": 196.97, "Hg": 200.59,
    "Pb": 207.2, "U": 238.03,
}  # fmt: skip

_AMINO_ACIDS = {
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
}  # fmt: skip
_MD_VARIANTS = {
    "HSD", "HSE", "HSP", "HID", "HIE", "HIP", "HSC", "CYX", "CYM", "CYN", "ASH", "ASPP",
    "GLH", "GLUP", "LYN", "LSN", "ARN", "TYM", "ACE", "NME", "NMA", "NH2", "CT3", "NHE",
    "NALA", "CALA", "MSE",
}  # fmt: skip
_NUCLEIC = {
    "A",
    "C",
    "G",
    "U",
    "T",
    "DA",
    "DC",
    "DG",
    "DT",
    "DU",
    "ADE",
    "CYT",
    "GUA",
    "URA",
    "THY",
}
_WATERS = {"HOH", "WAT", "TIP3", "TIP", "TIP3P", "TIP4", "TIP5", "SOL", "H2O", "DOD", "SPC", "T3P"}

#: Residue names whose atoms are named by the PDB/CHARMM/AMBER conventions (first letter = element).
STANDARD_RESIDUES: frozenset[str] = frozenset(_AMINO_ACIDS | _MD_VARIANTS | _NUCLEIC | _WATERS)

#: Atom names inside standard residues that do not follow the first-letter rule.
_RESIDUE_EXCEPTIONS: dict[tuple[str, str], str] = {("MSE", "SE"): "Se"}

#: Single-ion residue names (PDB and MD force-field spellings) and their element.
ION_RESIDUES: dict[str, str] = {
    "NA": "Na", "NA+": "Na", "SOD": "Na", "K": "K", "K+": "K", "POT": "K",
    "CL": "Cl", "CL-": "Cl", "CLA": "Cl", "CA": "Ca", "CA2": "Ca", "CAL": "Ca",
    "MG": "Mg", "MG2": "Mg", "ZN": "Zn", "ZN2": "Zn", "ZN+": "Zn", "FE": "Fe", "FE2": "Fe",
    "FE3": "Fe", "MN": "Mn", "MN3": "Mn", "CU": "Cu", "CU1": "Cu", "CU2": "Cu", "CO": "Co",
    "3CO": "Co", "NI": "Ni", "CD": "Cd", "CD2": "Cd", "LI": "Li", "LIT": "Li", "RB": "Rb",
    "CS": "Cs", "CES": "Cs", "SR": "Sr", "BA": "Ba", "BR": "Br", "IOD": "I", "F": "F",
    "HG": "Hg", "AL": "Al", "AG": "Ag", "AU": "Au", "PT": "Pt", "PB": "Pb",
}  # fmt: skip

_FIRST_LETTER = {"H": "H", "C": "C", "N": "N", "O": "O", "S": "S", "P": "P"}
# Ligand atom names starting with these could be either the two-letter element or C/S/B...
_AMBIGUOUS_PREFIXES = ("CL", "BR", "SE")


def normalize_symbol(symbol: str) -> str | None:
    """Return the capitalised element symbol for ``symbol`` ('ZN' -> 'Zn'), or None if unknown.

    Arguments:
        symbol: an element symbol in any case, blanks allowed (``"D"`` reads as hydrogen).
    """
    s = symbol.strip()
    if not s or not s.isalpha() or len(s) > 2:
        return None
    s = s[0].upper() + s[1:].lower()
    if s == "D":  # deuterium
        return "H"
    el = gemmi.Element(s)
    return el.name if el.atomic_number > 0 and el.name == s else None


def atomic_number(symbol: str) -> int:
    """Atomic number Z of a (capitalised) element symbol; 0 if the symbol is unknown.

    Arguments:
        symbol: an element symbol, e.g. ``"C"``, ``"Zn"``.
    """
    return int(gemmi.Element(symbol).atomic_number) if normalize_symbol(symbol) else 0


def atomic_mass(symbol: str) -> float:
    """Standard atomic weight of ``symbol`` in dalton (``ATOMIC_MASSES``, else gemmi's value).

    Arguments:
        symbol: a capitalised element symbol; :class:`InputError` if unknown.
    """
    if symbol in ATOMIC_MASSES:
        return ATOMIC_MASSES[symbol]
    if normalize_symbol(symbol) is None:
        raise InputError(f"unknown element symbol {symbol!r}")
    return float(gemmi.Element(symbol).weight)


def _strip_name(name: str) -> str:
    """Atom name with surrounding blanks and leading digits removed ('1HB' -> 'HB')."""
    return re.sub(r"^\d+", "", name.strip())


def _cannot(where: str, name: str, resname: str, resid: object, why: str = "") -> InputError:
    extra = f" ({why})" if why else ""
    return InputError(
        f"{where}: cannot determine the element of atom {name!r} in residue {resname} {resid}"
        f"{extra}; add an element column (columns 77-78)"
    )


def infer_element(name: str, resname: str, resid: object, where: str) -> str:
    """Element symbol of an atom whose element column is empty.

    ``where`` is the location used in error messages, e.g. ``"model.pdb:12"``. Rules: atoms of
    standard residues (amino acids and their MD variants, caps, nucleic acids, waters) take the
    first letter of the name after leading digits, which must be H, C, N, O, S or P; atoms of
    known ion residues (NA, SOD, CA, CAL, ZN, ...) take the ion's element; other (ligand) atoms
    take the first letter if it is H, C, N, O, S or P and the name is not ambiguous.
    Raises :class:`InputError` otherwise.

    Arguments:
        name: the atom name (PDB columns 13-16, CHARMM/AMBER naming allowed).
        resname: the residue name.
        resid: the residue number (for the message).
        where: the location for the message, e.g. ``"model.pdb:12"``.
    """
    res = resname.strip().upper()
    stripped = _strip_name(name).upper()
    if res in STANDARD_RESIDUES:
        if (res, stripped) in _RESIDUE_EXCEPTIONS:
            return _RESIDUE_EXCEPTIONS[(res, stripped)]
        if stripped[:1] in _FIRST_LETTER:
            return _FIRST_LETTER[stripped[0]]
        raise _cannot(where, name.strip(), resname.strip(), resid, "unknown atom name")
    if res in ION_RESIDUES:
        return ION_RESIDUES[res]
    if stripped.startswith(_AMBIGUOUS_PREFIXES):
        raise _cannot(where, name.strip(), resname.strip(), resid, "ambiguous atom name")
    if stripped[:1] in _FIRST_LETTER:
        return _FIRST_LETTER[stripped[0]]
    raise _cannot(where, name.strip(), resname.strip(), resid)
