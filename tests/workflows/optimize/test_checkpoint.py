"""Checkpoints: an interrupted run resumed with the same seed ends exactly where an uninterrupted
run ends, including after a crash in the middle of writing the checkpoint."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.workflows.optimize import _checkpoint as ckmod
from cryoensemble.workflows.optimize import load_checkpoint, save_checkpoint

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def toy():
    name = "four_atom_toy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="module")
def toy_data(toy):
    return toy.simulate_toy(300, seed=2)


def test_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    rng.random(3)
    states = [{"positions": np.arange(12.0).reshape(4, 3), "key": np.array([1, 2], np.uint32)}]
    save_checkpoint(
        tmp_path,
        iteration=3,
        walker_states=states,
        rng_state=rng.bit_generator.state,
        history=[{"loss": 1.5}],
        trajectory=np.zeros((2, 1, 4, 3)),
        trajectory_iterations=[0, 3],
        fingerprint="abc",
    )
    ck = load_checkpoint(tmp_path)
    assert ck["iteration"] == 3 and ck["fingerprint"] == "abc" and ck["history"] == [{"loss": 1.5}]
    np.testing.assert_array_equal(ck["walker_states"][0]["positions"], states[0]["positions"])
    assert ck["walker_states"][0]["key"].dtype == np.uint32
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = ck["rng_state"]
    np.testing.assert_array_equal(rng2.random(4), rng.random(4))
    with pytest.raises(InputError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def _run(toy, toy_data, folder, **kw):
    particles, labels = toy_data
    return toy.run_toy(
        3,
        particles,
        labels,
        iterations=5,
        batch_size=64,
        inner_steps=2,
        folder=folder,
        refit=False,
        **kw,
    )[1]


def test_resume_after_a_kill_and_a_crash_during_writing_is_identical(
    toy, toy_data, tmp_path, monkeypatch
):
    full = _run(toy, toy_data, tmp_path / "full")

    part = tmp_path / "part"
    part.mkdir()
    first = _run(toy, toy_data, part, stop_after=2)  # "killed" after iteration 2
    assert len(first.history) == 2 and load_checkpoint(part)["iteration"] == 2

    # crash while writing the checkpoint of iteration 3: temp file written, rename never happens
    real_replace = ckmod.os.replace

    def boom(src, dst):
        assert Path(src).exists()  # the temporary file was written
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(ckmod.os, "replace", boom)
    with pytest.raises(RuntimeError, match="killed while writing"):
        _run(toy, toy_data, part, resume=True)
    monkeypatch.setattr(ckmod.os, "replace", real_replace)
    assert load_checkpoint(part)["iteration"] == 2  # the previous checkpoint is intact
    assert not [p for p in part.iterdir() if p.name.endswith(".tmp")]  # no temp file left

    resumed = _run(toy, toy_data, part, resume=True)
    assert len(resumed.history) == 5
    np.testing.assert_array_equal(resumed.positions, full.positions)
    for a, b in zip(resumed.history, full.history, strict=True):
        np.testing.assert_array_equal(a["batch_weights"], b["batch_weights"])
        assert a["loss"] == b["loss"]
    np.testing.assert_array_equal(resumed.trajectory, full.trajectory)


def test_resume_refuses_other_settings(toy, toy_data, tmp_path):
    particles, labels = toy_data
    folder = tmp_path / "run"
    folder.mkdir()
    toy.run_toy(
        3,
        particles,
        labels,
        iterations=2,
        batch_size=64,
        inner_steps=2,
        folder=folder,
        refit=False,
        stop_after=1,
    )
    with pytest.raises(InputError, match="other settings"):
        toy.run_toy(
            3,
            particles,
            labels,
            iterations=2,
            batch_size=64,
            inner_steps=2,
            folder=folder,
            refit=False,
            resume=True,
            step_size=0.3,
        )
