"""PDB/mmCIF reading refuses what it cannot read correctly, naming the file and the column,
line or atom: missing _atom_site columns, missing B-factors when they are asked for, NaN/inf."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.structure import read_models, read_structure

PDB = """\
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 15.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00 16.00           C
ATOM      3  C   ALA A   1      10.000   6.000  -4.000  1.00 17.00           C
END
"""


def _cif_loop() -> tuple[list[str], list[list[str]]]:
    structure = gemmi.read_pdb_string(PDB)
    structure.setup_entities()
    loop = structure.make_mmcif_document().sole_block().find_loop("_atom_site.id").get_loop()
    values, width = list(loop.values), loop.width()
    return list(loop.tags), [values[i : i + width] for i in range(0, len(values), width)]


def _cif(tmp_path, drop: str | None = None, row0: dict | None = None):
    """The three atoms as mmCIF, without column ``drop``, first row's values replaced."""
    tags, rows = _cif_loop()
    for tag, value in (row0 or {}).items():
        rows[0][tags.index(f"_atom_site.{tag}")] = value
    keep = [i for i, t in enumerate(tags) if t != f"_atom_site.{drop}"]
    text = "data_t\nloop_\n" + "".join(tags[i] + "\n" for i in keep)
    text += "".join(" ".join(r[i] for i in keep) + "\n" for r in rows)
    path = tmp_path / "m.cif"
    path.write_text(text)
    return path


def test_complete_cif_reads(tmp_path):
    model = read_structure(_cif(tmp_path), require_b_factors=True)
    np.testing.assert_allclose(model.b_factors, [15, 16, 17])
    np.testing.assert_allclose(model.positions[0], [11.104, 6.134, -6.504])


@pytest.mark.parametrize("column", ["Cartn_x", "Cartn_z", "type_symbol", "id", "label_asym_id"])
def test_cif_missing_column_is_named(tmp_path, column):
    with pytest.raises(
        InputError, match=rf"m.cif: mmCIF _atom_site has no column _atom_site.{column}$"
    ):
        read_structure(_cif(tmp_path, drop=column))


def test_cif_missing_atom_name_columns(tmp_path):
    with pytest.raises(
        InputError, match="neither column _atom_site.label_atom_id nor .*auth_atom_id"
    ):
        read_structure(_cif(tmp_path, drop="label_atom_id"))


def test_cif_without_residue_number(tmp_path):
    path = _cif(tmp_path, drop="auth_seq_id", row0={"label_seq_id": "."})
    with pytest.raises(
        InputError, match=r"m.cif: atom 1 \('N' in residue ALA\) has no residue num"
    ):
        read_structure(path)


def test_cif_without_b_factors(tmp_path):
    path = _cif(tmp_path, drop="B_iso_or_equiv")
    assert read_structure(path).n_atoms == 3  # not asked for: fine
    with pytest.raises(InputError, match="m.cif: B-factors were asked for but the file has no col"):
        read_structure(path, require_b_factors=True)
    unknown = _cif(tmp_path, row0={"B_iso_or_equiv": "?"})
    with pytest.raises(InputError, match=r"B_iso_or_equiv of atom row 1 is '\?' \(unknown\)"):
        read_models(unknown, require_b_factors=True)


@pytest.mark.parametrize(
    "field, value, what",
    [("Cartn_y", "nan", "coordinates"), ("Cartn_x", "?", "coordinates"),
     ("Cartn_z", "abc", "coordinates"), ("B_iso_or_equiv", "nan", "B-factor"),
     ("occupancy", "inf", "occupancy")],
)  # fmt: skip
def test_cif_non_finite_values(tmp_path, field, value, what):
    path = _cif(tmp_path, row0={field: value})
    with pytest.raises(InputError, match=rf"m.cif: atom 1: {what}.* of atom 'N' .*not a finite"):
        read_structure(path)


def test_pdb_without_b_factor_columns(tmp_path):
    path = tmp_path / "m.pdb"
    lines = PDB.splitlines()
    lines[1] = lines[1][:60]  # atom 2 ends after the occupancy
    path.write_text("\n".join(lines) + "\n")
    assert read_structure(path).n_atoms == 3
    with pytest.raises(InputError, match=r"m.pdb:2: B-factors were asked for but columns 61-66"):
        read_structure(path, require_b_factors=True)


def test_pdb_non_ascii_atom_record(tmp_path):
    path = tmp_path / "m.pdb"
    path.write_text(PDB.replace(" CA  ALA", " CÅ  ALA"))
    with pytest.raises(InputError, match="m.pdb:2: non-ASCII character in an atom record"):
        read_structure(path)


def test_pdb_parse_error_is_one_line(tmp_path):
    path = tmp_path / "m.pdb"
    path.write_text("ATOM nan N ALA A 1 11.104 6.134 -6.504 1.00 20.00 N\n")
    with pytest.raises(InputError, match="m.pdb: cannot parse the file as PDB") as err:
        read_structure(path)
    assert "\n" not in str(err.value)


def test_empty_model_is_refused(tmp_path):
    path = tmp_path / "m.pdb"
    path.write_text("MODEL        1\n" + PDB.replace("END\n", "ENDMDL\nMODEL        2\nENDMDL\n"))
    assert len(gemmi.read_pdb_string(path.read_text())) == 2
    with pytest.raises(InputError, match="m.pdb: model 2 of 2 has no atoms"):
        read_models(path)
