"""AtomicModel selections, centre of mass and positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cryoensemble
from cryoensemble.errors import InputError
from cryoensemble.structure import AtomicModel, read_structure, selection_indices

DATA = Path(cryoensemble.__file__).parent / "data"


def small_model() -> AtomicModel:
    names = ["N", "CA", "C", "O", "H", "CA", "ZN"]
    elements = ["N", "C", "C", "O", "H", "Ca", "Zn"]
    return AtomicModel(
        positions=np.arange(21, dtype=float).reshape(7, 3),
        elements=np.array(elements),
        atomic_numbers=np.array([7, 6, 6, 8, 1, 20, 30]),
        b_factors=np.zeros(7),
        occupancies=np.ones(7),
        atom_names=np.array(names),
        residue_names=np.array(["ALA"] * 5 + ["CA", "ZN"]),
        residue_ids=np.array([1] * 5 + [2, 3]),
        chain_ids=np.array(["A"] * 5 + ["B", "C"]),
        is_hetero=np.array([False] * 5 + [True, True]),
    )


def test_selections():
    m = small_model()
    assert m.n_atoms == len(m) == 7
    assert list(selection_indices(m, "all")) == list(range(7))
    assert list(selection_indices(m, "heavy")) == [0, 1, 2, 3, 5, 6]
    assert list(selection_indices(m, "calpha")) == [1]
    assert list(selection_indices(m, "backbone")) == [0, 1, 2, 3]
    assert list(selection_indices(m, "chain:B, C")) == [5, 6]
    assert m.chains("B").elements.tolist() == ["Ca"]
    assert m.chains(["A"]).n_atoms == 5
    assert m.selection("calpha").n_atoms == 1
    assert m.calpha().atomic_numbers.tolist() == [6]
    assert m.heavy_atoms().n_atoms == 6


@pytest.mark.parametrize("spec", ["protein", "chain:", "CA", ""])
def test_unknown_selection(spec):
    with pytest.raises(InputError, match="unknown atom selection"):
        small_model().selection(spec)


def test_select_by_mask_and_indices():
    m = small_model()
    by_mask = m.select(m.atomic_numbers > 6)
    by_idx = m.select([0, 3, 5, 6])
    np.testing.assert_array_equal(by_mask.positions, by_idx.positions)
    assert by_idx.residue_ids.tolist() == [1, 1, 2, 3]
    with pytest.raises(InputError):
        m.select([7])
    with pytest.raises(InputError):
        m.select(np.ones(3, dtype=bool))


def test_center_of_mass_is_mass_weighted():
    m = small_model().select([4, 6])  # H at (12,13,14), Zn at (18,19,20)
    w = np.array([1.008, 65.38])
    expected = (w[:, None] * m.positions).sum(0) / w.sum()
    np.testing.assert_allclose(m.center_of_mass(), expected)
    assert np.linalg.norm(m.center_of_mass() - m.positions[1]) < 0.2


def test_with_positions_and_immutability():
    m = small_model()
    moved = m.with_positions(m.positions + 1.0)
    np.testing.assert_allclose(moved.positions - m.positions, 1.0)
    assert moved.atom_names is m.atom_names
    with pytest.raises(InputError):
        m.with_positions(np.zeros((2, 3)))
    with pytest.raises(AttributeError):
        m.positions = np.zeros((7, 3))  # type: ignore[misc]


def test_bad_shapes():
    m = small_model()
    with pytest.raises(InputError, match="elements"):
        AtomicModel(**{**m.__dict__, "elements": np.array(["C"])})


def test_adk_selections():
    m = read_structure(DATA / "adk_open.pdb")
    assert m.calpha().n_atoms == 214  # one C-alpha per residue
    assert m.selection("backbone").n_atoms == 4 * 214 - 1  # C-terminus has OT1/OT2, not O
    assert m.heavy_atoms().n_atoms == 3341 - 1685
    com = m.center_of_mass()
    assert com.shape == (3,) and np.all(np.abs(com - m.positions.mean(0)) < 2.0)
