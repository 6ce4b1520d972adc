"""Ensemble optimisation: the four-atom toy (M = K, K + 1, K - 1) and, as a slow test, the
adenylate-kinase acceptance run (reduced size)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_example


def _check_recovery(out, frac):
    # every walker sits on a state (RMSD < 1.5 A), the weights of a state add up to its fraction
    assert max(min(r) for r in out["final_rmsd"]) < 1.5, out
    np.testing.assert_allclose(out["weight_per_state"], frac, atol=0.06)


def test_toy_m_equals_k_recovers_states_and_populations(toy, toy_data):
    particles, labels = toy_data
    out, res = toy.run_toy(3, particles, labels, iterations=6, batch_size=100, inner_steps=4)
    frac = np.bincount(labels, minlength=3) / len(labels)
    assert sorted(out["nearest_state"]) == [0, 1, 2], out
    _check_recovery(out, frac)
    np.testing.assert_allclose(sorted(out["final_long_side"]), toy.STATES, atol=1.5)


def test_toy_extra_walker_shares_an_occupied_state(toy, toy_data):
    particles, labels = toy_data
    out, _ = toy.run_toy(4, particles, labels, iterations=6, batch_size=100, inner_steps=4)
    frac = np.bincount(labels, minlength=3) / len(labels)
    assert set(out["nearest_state"]) == {0, 1, 2}, out  # all states covered, one twice
    _check_recovery(out, frac)


def test_toy_missing_walker_covers_the_most_populated_states(toy, toy_data):
    particles, labels = toy_data
    out, _ = toy.run_toy(
        2, particles, labels, iterations=6, batch_size=100, inner_steps=4, refit=True
    )
    assert sorted(out["nearest_state"]) == [0, 1], out  # populations 0.5 and 0.3
    assert max(min(r) for r in out["final_rmsd"]) < 1.5, out
    # the least populated state's particles (b = 70 A) go mostly to the nearest walker (55 A)
    frac = np.bincount(labels, minlength=3) / len(labels)
    w55 = out["weights"][out["nearest_state"].index(1)]
    assert frac[1] + 0.5 * frac[2] < w55 < frac[1] + frac[2] + 0.03, (w55, frac)


def test_adam_optimizer_also_recovers_the_toy(toy, toy_data):
    particles, labels = toy_data
    out, res = toy.run_toy(
        3,
        particles,
        labels,
        iterations=6,
        batch_size=100,
        inner_steps=4,
        optimizer="adam",
        refit=False,
    )
    assert sorted(out["nearest_state"]) == [0, 1, 2], out
    assert max(min(r) for r in out["final_rmsd"]) < 1.5, out


@pytest.mark.slow
def test_adk_reduced_opens_the_walker(tmp_path):
    """The acceptance experiment at 64 x 64, 2.4 A (400 particles): the opening walker ends
    within 2 A Calpha RMSD of the open state, the weights within 0.05 of the truth."""
    ex = load_example("adk_open_closed")
    rec = ex.main(["--out", str(tmp_path / "adk"), "--reduced", "--iterations", "30", "--quiet"])
    assert rec["final_rmsd_open"] <= 2.0
    assert rec["final_rmsd_other_closed"] <= 1.0
    assert abs(rec["weight_open"] - 0.7) <= 0.05
    assert abs(rec["weight_open"] - rec["open_fraction"]) <= 0.02
