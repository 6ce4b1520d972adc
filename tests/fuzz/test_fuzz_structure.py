"""Fuzz the PDB and mmCIF readers: only InputError (one line naming the file) ever escapes."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
from corruption import BUDGETS, assert_budget, corrupted, run_fuzz
from hypothesis import strategies as st

from cryoensemble.structure import read_models

PDB = """\
HEADER    FUZZ
MODEL        1
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 20.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00 21.50           C
ATOM      3  C   ALA A   1      10.000   6.000  -4.000  0.50 22.00           C
ATOM      4  O   ALA A   1       9.500   5.000  -3.500  1.00 23.00           O
ATOM      5  CB AALA A   1      12.000   7.000  -5.000  0.60 24.00           C
ATOM      6  CB BALA A   1      12.100   7.100  -5.100  0.40 24.00           C
ATOM      7  CA  TIP3W   2       1.000   1.000   1.000  1.00  0.00
HETATM    8 ZN    ZN B 301       5.000   5.000   5.000  1.00 30.00          ZN
ENDMDL
MODEL        2
ATOM      1  N   ALA A   1      11.204   6.134  -6.504  1.00 20.00           N
ATOM      2  CA  ALA A   1      11.739   6.071  -5.147  1.00 21.50           C
ATOM      3  C   ALA A   1      10.100   6.000  -4.000  0.50 22.00           C
ATOM      4  O   ALA A   1       9.600   5.000  -3.500  1.00 23.00           O
ATOM      5  CB AALA A   1      12.100   7.000  -5.000  0.60 24.00           C
ATOM      6  CB BALA A   1      12.200   7.100  -5.100  0.40 24.00           C
ATOM      7  CA  TIP3W   2       1.100   1.000   1.000  1.00  0.00
HETATM    8 ZN    ZN B 301       5.100   5.000   5.000  1.00 30.00          ZN
ENDMDL
END
"""


def _mmcif() -> str:
    structure = gemmi.read_pdb_string(PDB.replace("TIP3W", "HOH W"))
    structure.setup_entities()
    return structure.make_mmcif_document().as_string()


ORIGINALS = {"pdb": [PDB.encode()], "cif": [_mmcif().encode()]}


def _check(folder, suffix: str):
    path = folder / f"fuzz.{suffix}"

    def check(example) -> None:
        data, require_b_factors = example
        path.write_bytes(data)
        models = read_models(path, require_b_factors=require_b_factors)
        for model in models:
            assert np.all(np.isfinite(model.positions)) and np.all(np.isfinite(model.b_factors))
            assert model.n_atoms > 0

    return check


@pytest.mark.parametrize("suffix", ["pdb", "cif"])
def test_originals_read(tmp_path, suffix):
    check = _check(tmp_path, suffix)
    for data in ORIGINALS[suffix]:
        check((data, True))
    assert len(read_models(tmp_path / f"fuzz.{suffix}")) == 2


@pytest.mark.parametrize("suffix", ["pdb", "cif"])
@pytest.mark.parametrize("n_examples", BUDGETS)
def test_fuzz_structure(tmp_path, suffix, n_examples):
    strategy = st.tuples(corrupted(ORIGINALS[suffix]), st.booleans())
    counts = run_fuzz(strategy, _check(tmp_path, suffix), n_examples, f"fuzz.{suffix}")
    assert_budget(counts, n_examples)
