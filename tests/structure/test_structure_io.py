"""Reading and writing PDB/mmCIF files."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

import cryoensemble
from cryoensemble.errors import InputError
from cryoensemble.structure import (
    read_models,
    read_structure,
    write_multimodel_pdb,
    write_pdb,
)

DATA = Path(cryoensemble.__file__).parent / "data"


def atom(serial, name, resname, chain, resid, xyz, occ=1.0, b=0.0, element="", het=False,
         altloc=" "):  # fmt: skip
    """One PDB ATOM/HETATM line with exact columns."""
    rec = "HETATM" if het else "ATOM  "
    field = name.ljust(4) if len(name) == 4 or len(element.strip()) == 2 else f" {name:<3}"
    x, y, z = xyz
    return (
        f"{rec}{serial:>5} {field}{altloc}{resname:>3} {chain}{resid:>4}    "
        f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{b:6.2f}          {element:>2}"
    )


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\nEND\n")
    return path


ALA = [
    atom(1, "N", "ALA", "A", 1, (0.0, 0.0, 0.0)),
    atom(2, "CA", "ALA", "A", 1, (1.458, 0.0, 0.0)),
    atom(3, "C", "ALA", "A", 1, (2.009, 1.420, 0.0)),
    atom(4, "O", "ALA", "A", 1, (1.251, 2.390, 0.0)),
    atom(5, "CB", "ALA", "A", 1, (1.988, -0.773, -1.199)),
    atom(6, "HB1", "ALA", "A", 1, (1.6, -1.8, -1.2)),
]


def test_zn_ion_with_and_without_element_column(tmp_path):
    for element in ("ZN", ""):
        zn = atom(7, "ZN", "ZN", "B", 301, (5.0, 5.0, 5.0), element=element, het=True)
        model = read_structure(write(tmp_path, f"zn{element}.pdb", [*ALA, zn]))
        assert model.elements[-1] == "Zn" and model.atomic_numbers[-1] == 30
        assert model.is_hetero[-1] and not model.is_hetero[0]
        assert list(model.elements[:6]) == ["N", "C", "C", "O", "C", "H"]


def test_calcium_ion_versus_calpha(tmp_path):
    ca_ion = atom(7, "CA", "CA", "B", 302, (9.0, 9.0, 9.0), het=True)
    model = read_structure(write(tmp_path, "ca.pdb", [*ALA, ca_ion]))
    assert model.elements[1] == "C" and model.atomic_numbers[1] == 6
    assert model.elements[-1] == "Ca" and model.atomic_numbers[-1] == 20
    assert model.calpha().n_atoms == 1
    np.testing.assert_allclose(model.calpha().positions[0], [1.458, 0.0, 0.0])


def test_unknown_atom_name_names_atom_and_line(tmp_path):
    lines = ["REMARK test", *ALA, atom(7, "XX1", "ALA", "A", 1, (3.0, 3.0, 3.0))]
    path = write(tmp_path, "bad.pdb", lines)
    with pytest.raises(InputError, match=rf"{path}:8: .*'XX1' in residue ALA 1.*77-78"):
        read_structure(path)


def test_unknown_metal_ligand_without_element_fails(tmp_path):
    path = write(tmp_path, "fe.pdb", [*ALA, atom(7, "FE", "HEM", "A", 2, (3, 3, 3), het=True)])
    with pytest.raises(InputError, match=rf"{path}:7: .*'FE' in residue HEM 2"):
        read_structure(path)


def test_bad_element_column(tmp_path):
    path = write(tmp_path, "el.pdb", [atom(1, "N", "ALA", "A", 1, (0, 0, 0), element="QQ")])
    with pytest.raises(InputError, match=rf"{path}:1: unknown element 'QQ'"):
        read_structure(path)


def test_altloc_keeps_highest_occupancy(tmp_path):
    lines = [
        atom(1, "N", "ALA", "A", 1, (0.0, 0.0, 0.0)),
        atom(2, "CA", "ALA", "A", 1, (1.0, 0.0, 0.0), occ=0.3, altloc="A"),
        atom(3, "CA", "ALA", "A", 1, (2.0, 0.0, 0.0), occ=0.7, altloc="B"),
        atom(4, "CB", "ALA", "A", 1, (3.0, 0.0, 0.0), occ=0.5, altloc="A"),
        atom(5, "CB", "ALA", "A", 1, (4.0, 0.0, 0.0), occ=0.5, altloc="B"),
        atom(6, "C", "ALA", "A", 1, (5.0, 0.0, 0.0)),
    ]
    model = read_structure(write(tmp_path, "alt.pdb", lines))
    assert list(model.atom_names) == ["N", "CA", "CB", "C"]
    np.testing.assert_allclose(model.positions[:, 0], [0.0, 2.0, 3.0, 5.0])
    np.testing.assert_allclose(model.occupancies, [1.0, 0.7, 0.5, 1.0], atol=1e-6)


def _two_models(tmp_path):
    lines = []
    for k in range(2):
        lines += [f"MODEL     {k + 1:>4}"]
        lines += [atom(i + 1, "CA", "GLY", "A", i + 1, (i * 3.8 + k, 0, 0)) for i in range(3)]
        lines += ["ENDMDL"]
    return write(tmp_path, "multi.pdb", lines)


def test_multi_model_selection(tmp_path):
    path = _two_models(tmp_path)
    models = read_models(path)
    assert len(models) == 2
    np.testing.assert_allclose(models[1].positions[:, 0] - models[0].positions[:, 0], 1.0)
    np.testing.assert_allclose(read_structure(path, 1).positions, models[1].positions)
    with pytest.raises(InputError, match=r"model_index 2 is out of range; the file has 2 models"):
        read_structure(path, model_index=2)
    with pytest.raises(InputError, match="out of range"):
        read_structure(path, model_index=-1)


def test_mmcif_reading(tmp_path):
    pdb = write(tmp_path, "src.pdb", [*ALA, atom(7, "ZN", "ZN", "B", 301, (5, 5, 5), element="ZN",
                                                 het=True)])  # fmt: skip
    st = gemmi.read_structure(str(pdb))
    st.setup_entities()
    cif = tmp_path / "model.cif"
    st.make_mmcif_document().write_file(str(cif))
    model = read_structure(cif)
    assert model.n_atoms == 7
    assert list(model.elements) == ["N", "C", "C", "O", "C", "H", "Zn"]
    np.testing.assert_allclose(model.positions, read_structure(pdb).positions, atol=1e-3)
    assert model.residue_ids[-1] == 301 and model.is_hetero[-1]


def test_mmcif_without_type_symbol_fails(tmp_path):
    pdb = write(tmp_path, "src.pdb", ALA)
    doc = gemmi.read_structure(str(pdb)).make_mmcif_document()
    for row in doc.sole_block().find("_atom_site.", ["type_symbol"]):
        row[0] = "?"
    path = tmp_path / "nosym.cif"
    doc.write_file(str(path))
    with pytest.raises(InputError, match=rf"{path}: atom 1 .*type_symbol"):
        read_structure(path)


def test_round_trip_adk(tmp_path):
    model = read_structure(DATA / "adk_open.pdb")
    out = tmp_path / "out.pdb"
    write_pdb(model, out)
    again = read_structure(out)
    np.testing.assert_allclose(again.positions, model.positions, atol=1e-3)
    for field in ("atom_names", "elements", "residue_names", "residue_ids", "chain_ids"):
        np.testing.assert_array_equal(getattr(again, field), getattr(model, field))
    np.testing.assert_allclose(again.b_factors, model.b_factors, atol=1e-2)
    assert not list(tmp_path.glob("*.tmp"))


def test_round_trip_ions_and_four_letter_residues(tmp_path):
    water = [atom(7, "OH2", "TIP", "W", 2, (7, 7, 7)), atom(8, "H1", "TIP", "W", 2, (7.9, 7, 7))]
    water = [line[:17] + "TIP3W" + line[22:] for line in water]  # CHARMM: resname in 18-21
    ca = atom(9, "CA", "CA", "B", 3, (9, 9, 9), het=True)
    model = read_structure(write(tmp_path, "in.pdb", [*ALA, *water, ca]))
    assert list(model.residue_names[6:8]) == ["TIP3", "TIP3"]
    assert list(model.elements[6:]) == ["O", "H", "Ca"]
    out = tmp_path / "out.pdb"
    write_pdb(model, out, positions=model.positions + 1.0)
    again = read_structure(out)
    np.testing.assert_allclose(again.positions, model.positions + 1.0, atol=1e-3)
    np.testing.assert_array_equal(again.elements, model.elements)
    np.testing.assert_array_equal(again.residue_names, model.residue_names)
    np.testing.assert_array_equal(again.is_hetero, model.is_hetero)


def test_write_multimodel(tmp_path):
    model = read_structure(DATA / "trialanine" / "ala_model_0.pdb")
    rng = np.random.default_rng(0)
    frames = [model.positions + rng.normal(size=model.positions.shape) for _ in range(3)]
    out = tmp_path / "traj.pdb"
    write_multimodel_pdb(model, frames, out)
    models = read_models(out)
    assert len(models) == 3
    for frame, m in zip(frames, models, strict=True):
        np.testing.assert_allclose(m.positions, frame, atol=1e-3)
        np.testing.assert_array_equal(m.elements, model.elements)
    with pytest.raises(InputError, match="shape"):
        write_pdb(model, tmp_path / "bad.pdb", positions=np.zeros((3, 3)))


def test_missing_empty_and_atomless_files(tmp_path):
    with pytest.raises(InputError, match=r"nope\.pdb: file not found"):
        read_structure(tmp_path / "nope.pdb")
    empty = tmp_path / "empty.pdb"
    empty.write_text("   \n")
    with pytest.raises(InputError, match=r"empty\.pdb: the file is empty"):
        read_structure(empty)
    no_atoms = tmp_path / "remarks.pdb"
    no_atoms.write_text("REMARK nothing here\nEND\n")
    with pytest.raises(InputError, match=r"remarks\.pdb: no atoms"):
        read_structure(no_atoms)


def test_unparsable_content(tmp_path):
    garbage = atom(1, "N", "ALA", "A", 1, (0, 0, 0))
    garbage = garbage[:30] + "   abc  " + garbage[38:]
    path = write(tmp_path, "garbage.pdb", ["REMARK x", garbage])
    with pytest.raises(InputError, match=rf"{path}:2: cannot read x \(columns 31-38\)"):
        read_structure(path)
    bad_cif = tmp_path / "bad.cif"
    bad_cif.write_text("data_x\nloop_\n_atom_site.id\n'unterminated\n")
    with pytest.raises(InputError, match=r"bad\.cif"):
        read_structure(bad_cif)
