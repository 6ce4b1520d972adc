"""Tests of the OpenMM prior projector (skipped without the optional ``openmm`` package)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from importlib import resources

import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.structure import read_structure

DATA = resources.files("cryoensemble") / "data"
TRI = DATA / "trialanine"


def _rmsd(a, b):
    from cryoensemble.pose import superposed_rmsd

    return superposed_rmsd(a, b)


def test_clear_error_without_openmm(monkeypatch):
    import cryoensemble.ensemble._openmm as real

    monkeypatch.setitem(sys.modules, "openmm", None)
    monkeypatch.setitem(sys.modules, "openmm.app", None)
    # a fresh copy of the module (not a reload, which would replace the classes that the other
    # tests use): the module itself imports without OpenMM
    spec = importlib.util.spec_from_file_location("_openmm_without_openmm", real.__file__)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    with pytest.raises(InputError, match=r"cryoensemble\[md\]"):
        mod.OpenMMProjector(TRI / "initial_model_0.pdb")
    with pytest.raises(InputError, match=r"cryoensemble\[md\]"):
        mod.require_openmm()


openmm = pytest.importorskip("openmm")

from cryoensemble.ensemble._openmm import (  # noqa: E402
    OpenMMProjector,
    amber_names,
)


@pytest.fixture(scope="module")
def tri():
    start = read_structure(TRI / "initial_model_0.pdb")
    target = read_structure(TRI / "ala_model_0.pdb")
    proj = OpenMMProjector(TRI / "initial_model_0.pdb", n_steps=200, k=1e5, threads=1)
    return proj, start, target


def test_trialanine_builds_without_added_atoms(tri):
    proj, start, _ = tri
    assert proj.added_atoms == 0
    assert proj.n_md_atoms == start.n_atoms
    np.testing.assert_array_equal(proj.selection, np.flatnonzero(start.atomic_numbers > 1))


def test_projection_pulls_towards_target(tri):
    proj, start, target = tri
    sel = proj.selection
    state = proj.init_state(start.positions, walker=0, seed=3)
    before = _rmsd(proj.positions(state)[sel], target.positions[sel])
    new, pos = proj.project(state, target.positions[sel], sel)
    after = _rmsd(pos[sel], target.positions[sel])
    assert before > 2.0
    assert after < 0.7 * before
    assert new.step == 200
    # returned positions are superposed onto the target (its frame)
    rms_plain = np.sqrt(np.mean(np.sum((pos[sel] - target.positions[sel]) ** 2, axis=1)))
    assert rms_plain == pytest.approx(after, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(proj.positions(new), pos)
    # bonds stay physical: C-H bonds near 1.09 A (HBond constraints)
    h = np.flatnonzero(start.atomic_numbers == 1)
    d = np.linalg.norm(pos[h][:, None] - pos[start.atomic_numbers > 1][None], axis=2).min(axis=1)
    assert np.all((d > 0.9) & (d < 1.2))


def test_determinism_and_seeds(tri):
    proj, start, target = tri
    sel = proj.selection
    s_a = proj.init_state(start.positions, walker=0, seed=11)
    s_b = proj.init_state(start.positions, walker=0, seed=11)
    np.testing.assert_array_equal(s_a.md_velocities, s_b.md_velocities)
    _, p_a = proj.project(s_a, target.positions[sel], sel)
    _, p_b = proj.project(s_b, target.positions[sel], sel)
    np.testing.assert_array_equal(p_a, p_b)
    # another walker (same run seed) or another seed: another random stream
    s_c = proj.init_state(start.positions, walker=1, seed=11)
    _, p_c = proj.project(s_c, target.positions[sel], sel)
    assert np.abs(p_c - p_a).max() > 1e-3


def test_state_round_trip_continues_identically(tri):
    proj, start, target = tri
    sel = proj.selection
    state = proj.init_state(start.positions, walker=2, seed=5)
    state, _ = proj.project(state, target.positions[sel], sel)
    arrays = {k: np.array(v) for k, v in proj.state_dict(state).items()}
    restored = proj.load_state(arrays)
    s1, p1 = proj.project(state, target.positions[sel], sel)
    s2, p2 = proj.project(restored, target.positions[sel], sel)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1.md_velocities, s2.md_velocities)
    assert s1.step == s2.step == 400


def test_rigid_motion_of_state_dict_is_honoured(tri):
    """The optimiser re-aligns walkers by rotating ``positions`` and ``velocities``."""
    proj, start, _ = tri
    state = proj.init_state(start.positions, walker=0, seed=1)
    arrays = proj.state_dict(state)
    c, s = np.cos(0.7), np.sin(0.7)
    r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    t = np.array([1.0, -2.0, 3.0])
    arrays["positions"] = arrays["positions"] @ r.T + t
    arrays["velocities"] = arrays["velocities"] @ r.T
    moved = proj.load_state(arrays)
    np.testing.assert_allclose(proj.positions(moved), arrays["positions"], atol=1e-9)
    e0, e1 = proj.potential_energy(state), proj.potential_energy(moved)
    assert e1 == pytest.approx(e0, abs=1e-3 * max(1.0, abs(e0)))


def test_other_selection_in_project(tri):
    proj, start, target = tri
    ca = np.flatnonzero((start.atom_names == "CA") | (start.atom_names == "CH3"))
    state = proj.init_state(start.positions, walker=0, seed=2)
    before = _rmsd(start.positions[ca], target.positions[ca])
    _, pos = proj.project(state, target.positions[ca], ca)
    assert _rmsd(pos[ca], target.positions[ca]) < before
    proj.project(state, target.positions[proj.selection], proj.selection)  # and back


def test_bad_inputs(tri):
    proj, start, _ = tri
    sel = proj.selection
    state = proj.init_state(start.positions, walker=0, seed=0)
    with pytest.raises(InputError, match="target must have shape"):
        proj.project(state, np.zeros((3, 3)), sel)
    with pytest.raises(InputError, match="positions must have shape"):
        proj.init_state(start.positions[:5], walker=0, seed=0)
    with pytest.raises(InputError, match="solvent"):
        OpenMMProjector(TRI / "initial_model_0.pdb", solvent="water")
    with pytest.raises(InputError, match="lacks"):
        proj.load_state({"positions": start.positions})


def test_missing_hydrogens_are_added(tmp_path):
    from cryoensemble.structure import write_pdb

    model = read_structure(TRI / "initial_model_0.pdb")
    heavy = model.heavy_atoms()
    path = tmp_path / "heavy.pdb"
    write_pdb(heavy, path)
    proj = OpenMMProjector(path, n_steps=50, threads=1, minimize_iterations=50)
    assert proj.added_atoms == model.n_atoms - heavy.n_atoms
    state = proj.init_state(heavy.positions, walker=0, seed=0)
    _, pos = proj.project(state, heavy.positions, np.arange(heavy.n_atoms))
    assert pos.shape == heavy.positions.shape
    assert _rmsd(pos, heavy.positions) < 0.5


def test_obc2_implicit_solvent():
    proj = OpenMMProjector(TRI / "initial_model_0.pdb", solvent="obc2", n_steps=20, threads=1)
    names = {type(f).__name__ for f in proj.system.getForces()}
    assert "GBSAOBCForce" in names or "CustomGBForce" in names


def test_charmm_names_map_to_amber():
    res, atoms, variants = amber_names(
        ["HSD", "HSD", "ILE", "ILE", "ILE", "LYS", "LYS"],
        ["CB", "HD1", "CD", "HN", "OT2", "HT1", "HB1"],
        [0, 0, 1, 1, 1, 2, 2],
    )
    assert res == ["HIS", "HIS", "ILE", "ILE", "ILE", "LYS", "LYS"]
    assert atoms == ["CB", "HD1", "CD1", "H", "OXT", "H", "HB3"]
    assert variants == ["HID", None, None]


def test_charmm_adenylate_kinase_builds():
    """CHARMM-named ADK (HSD, HN, HT1-3, OT1/OT2, ILE CD): every atom maps to amber14."""
    t0 = time.perf_counter()
    model = read_structure(DATA / "adk_closed.pdb")
    proj = OpenMMProjector(model, n_steps=10, threads=1, minimize_iterations=0)
    assert proj.added_atoms == 0
    assert proj.n_md_atoms == model.n_atoms
    his = [r for r in proj.topology.residues() if r.name == "HIS"]
    assert len(his) == len(set(model.residue_ids[model.residue_names == "HSD"]))
    sel = proj.selection
    state = proj.init_state(model.positions, walker=0, seed=0)
    _, pos = proj.project(state, model.positions[sel], sel)
    assert np.all(np.isfinite(pos))
    assert _rmsd(pos[sel], model.positions[sel]) < 0.5
    assert time.perf_counter() - t0 < 30


def test_missing_heavy_atoms_with_pdbfixer(tmp_path):
    pytest.importorskip("pdbfixer")
    from cryoensemble.structure import write_pdb

    model = read_structure(TRI / "initial_model_0.pdb")
    keep = ~((model.residue_ids == 3) & np.isin(model.atom_names, ["CB", "HB1", "HB2", "HB3"]))
    part = model.select(keep)
    path = tmp_path / "missing_cb.pdb"
    write_pdb(part, path)
    proj = OpenMMProjector(path, n_steps=20, threads=1)
    assert proj.added_atoms == 4
    state = proj.init_state(part.positions, walker=0, seed=0)
    _, pos = proj.project(state, part.positions[proj.selection], proj.selection)
    assert pos.shape == part.positions.shape and np.all(np.isfinite(pos))
