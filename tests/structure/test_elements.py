"""Element inference for PDB files without an element column (CHARMM/AMBER/MD output)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import cryoensemble
from cryoensemble.errors import InputError
from cryoensemble.structure import read_structure
from cryoensemble.structure._elements import infer_element, normalize_symbol

DATA = Path(cryoensemble.__file__).parent / "data"

# Residues as they occur inside a chain (amino acid minus water), neutral forms:
# (C, H, N, O, S).
_RESIDUE_FORMULA = {
    "GLY": (2, 3, 1, 1, 0), "ALA": (3, 5, 1, 1, 0), "SER": (3, 5, 1, 2, 0),
    "CYS": (3, 5, 1, 1, 1), "VAL": (5, 9, 1, 1, 0), "THR": (4, 7, 1, 2, 0),
    "PRO": (5, 7, 1, 1, 0), "LEU": (6, 11, 1, 1, 0), "ILE": (6, 11, 1, 1, 0),
    "ASN": (4, 6, 2, 2, 0), "ASP": (4, 5, 1, 3, 0), "GLN": (5, 8, 2, 2, 0),
    "GLU": (5, 7, 1, 3, 0), "LYS": (6, 12, 2, 1, 0), "MET": (5, 9, 1, 1, 1),
    "HIS": (6, 7, 3, 1, 0), "PHE": (9, 9, 1, 1, 0), "ARG": (6, 12, 4, 1, 0),
    "TYR": (9, 9, 1, 2, 0), "TRP": (11, 10, 2, 1, 0),
    # caps: acetyl CH3-CO- and N-methylamide -NH-CH3
    "ACE": (2, 3, 0, 1, 0), "NME": (1, 4, 1, 0, 0),
}  # fmt: skip
# CHARMM protonation states (extra hydrogens relative to the neutral residue).
_CHARMM = {"HSD": ("HIS", 0), "HSE": ("HIS", 0), "HSP": ("HIS", 1), "LYS": ("LYS", 1),
           "ARG": ("ARG", 1), "ASP": ("ASP", -1), "GLU": ("GLU", -1)}  # fmt: skip


def _residues_from_text(path: Path) -> list[str]:
    """Residue names in file order, read from the raw columns (independent of the reader)."""
    seen, names = set(), []
    for line in path.read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            key = (line[21], line[22:27])
            if key not in seen:
                seen.add(key)
                names.append(line[17:21].strip())
    return names


def _expected_composition(resnames: list[str], charged_termini: bool) -> Counter:
    total = Counter()
    for name in resnames:
        base, extra_h = _CHARMM.get(name, (name, 0))
        c, h, n, o, s = _RESIDUE_FORMULA[base]
        total.update({"C": c, "H": h + extra_h, "N": n, "O": o, "S": s})
    if charged_termini:  # NH3+ (two more H than an amide NH) and COO- (one more O)
        total.update({"H": 2, "O": 1})
    return +total


@pytest.mark.parametrize("name", ["adk_open.pdb", "adk_closed.pdb"])
def test_adk_elements_match_residue_composition(name):
    path = DATA / name
    model = read_structure(path)
    counts = Counter(model.elements.tolist())
    assert model.n_atoms == 3341
    assert counts == _expected_composition(_residues_from_text(path), charged_termini=True)
    assert counts == {"C": 1040, "N": 289, "O": 320, "S": 7, "H": 1685}
    assert set(model.atomic_numbers.tolist()) == {1, 6, 7, 8, 16}


@pytest.mark.parametrize("path", sorted((DATA / "trialanine").glob("*.pdb")), ids=lambda p: p.name)
def test_trialanine_elements_match_composition(path):
    model = read_structure(path)
    expected = _expected_composition(_residues_from_text(path), charged_termini=False)
    assert model.n_atoms == 42 == sum(expected.values())
    assert Counter(model.elements.tolist()) == expected
    assert model.heavy_atoms().n_atoms == 20


def test_hydrogen_names_never_become_mercury_or_hafnium():
    for name in ["HG1", "HG21", "1HB", "HH31", "HT1", "HF1", "HO2'"]:
        assert infer_element(name, "THR", 1, "x.pdb:1") == "H"
    assert infer_element("CA", "ALA", 1, "x.pdb:1") == "C"
    assert infer_element("OT2", "GLY", 1, "x.pdb:1") == "O"
    assert infer_element("OW", "SOL", 1, "x.pdb:1") == "O"
    assert infer_element("SD", "MET", 1, "x.pdb:1") == "S"
    assert infer_element("P", "DA", 1, "x.pdb:1") == "P"


def test_ions_and_ligands():
    assert infer_element("CA", "CA", 5, "x.pdb:3") == "Ca"
    assert infer_element("CAL", "CAL", 5, "x.pdb:3") == "Ca"
    assert infer_element("SOD", "SOD", 5, "x.pdb:3") == "Na"
    assert infer_element("CLA", "CLA", 5, "x.pdb:3") == "Cl"
    assert infer_element("ZN", "ZN2", 5, "x.pdb:3") == "Zn"
    assert infer_element("C12", "LIG", 5, "x.pdb:3") == "C"
    with pytest.raises(InputError, match=r"x\.pdb:3: .*'FE1' in residue HEM 5.*columns 77-78"):
        infer_element("FE1", "HEM", 5, "x.pdb:3")
    with pytest.raises(InputError, match="'CL1'"):
        infer_element("CL1", "LIG", 5, "x.pdb:3")


def test_unknown_name_in_standard_residue():
    with pytest.raises(InputError, match=r"f\.pdb:7: .*'XX1' in residue ALA 2"):
        infer_element("XX1", "ALA", 2, "f.pdb:7")


def test_normalize_symbol():
    assert normalize_symbol("ZN") == "Zn"
    assert normalize_symbol(" C") == "C"
    assert normalize_symbol("D") == "H"
    assert normalize_symbol("XX") is None
    assert normalize_symbol("1") is None
