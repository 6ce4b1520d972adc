"""``cryoensemble optimize`` through the command line (tri-alanine, tiny run) and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cryoensemble.cli.main import app
from cryoensemble.structure import read_models, read_structure

runner = CliRunner()
ALA = Path(__file__).resolve().parents[2] / "src" / "cryoensemble" / "data" / "trialanine"
ADK = ALA.parent / "adk_closed.pdb"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in result.output, (w, result.output)


@pytest.fixture(scope="module")
def particles(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ala") / "sim"
    r = run(
        "simulate",
        "--structure",
        ALA / "ala_model_0.pdb",
        "--structure",
        ALA / "ala_model_1.pdb",
        "--weights",
        "0.7,0.3",
        "--n-particles",
        "40",
        "--box-size",
        "32",
        "--pixel-size",
        "0.8",
        "--snr",
        "1",
        "--quiet",
        "--no-gallery",
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    return out / "particles.star"


def write_config(folder: Path, particles: Path, **changes) -> Path:
    cfg = {
        "walkers": [str(ALA / "initial_model_0.pdb"), str(ALA / "initial_model_1.pdb")],
        "particles": str(particles),
        "reference": str(ALA / "ref_model.pdb"),
        "ground_truth": [str(ALA / "ala_model_0.pdb"), str(ALA / "ala_model_1.pdb")],
        "rmsd_selection": "heavy",
        "iterations": 2,
        "inner_steps": 1,
        "batch_size": 16,
        "step_size": 0.1,
        "n_samples": 100,
        "burn_in": 10,
        "progress": False,
        "projector": {"kind": "langevin", "langevin": {"n_steps": 10}},
    }
    cfg.update(changes)
    path = folder / "optimize.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_writes_every_output_and_resume_continues(particles, tmp_path):
    cfg = write_config(tmp_path, particles)
    out = tmp_path / "run"
    r = run("optimize", "--config", cfg, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    for name in [
        "weights.json",
        "weights.csv",
        "walker_0.pdb",
        "walker_1.pdb",
        "walkers_traj_0.pdb",
        "walkers_traj_1.pdb",
        "history.json",
        "history.csv",
        "loss.png",
        "weights.png",
        "rmsd.png",
        "optimize.log",
        "provenance.json",
        "config.yaml",
        "checkpoint.npz",
    ]:
        assert (out / name).exists(), name
    w = json.loads((out / "weights.json").read_text())
    assert len(w["weights"]) == 2 and abs(sum(w["weights"]) - 1) < 1e-6
    assert all(
        lo <= m <= hi for lo, m, hi in zip(w["lower"], w["weights"], w["upper"], strict=True)
    )
    start = read_structure(ALA / "initial_model_0.pdb")
    final = read_structure(out / "walker_0.pdb")
    np.testing.assert_array_equal(final.atom_names, start.atom_names)
    np.testing.assert_array_equal(final.residue_ids, start.residue_ids)
    assert len(read_models(out / "walkers_traj_0.pdb")) == 3  # start + 2 iterations
    hist = json.loads((out / "history.json").read_text())
    assert [h["iteration"] for h in hist] == [1, 2] and "rmsd" in hist[0]

    # an existing folder is refused without --resume / --overwrite, and left untouched
    before = (out / "weights.json").read_bytes()
    assert_user_error(run("optimize", "--config", cfg, "--out", out), "already exists")
    assert (out / "weights.json").read_bytes() == before

    # --resume with more iterations continues from the checkpoint
    r = run("optimize", "--config", cfg, "--out", out, "--resume", "--iterations", "3", "--quiet")
    assert r.exit_code == 0, r.output
    hist = json.loads((out / "history.json").read_text())
    assert [h["iteration"] for h in hist] == [1, 2, 3]
    assert len(read_models(out / "walkers_traj_0.pdb")) == 4

    # resuming with other settings is refused before anything is written
    cfg_before = (out / "config.yaml").read_text()
    other = write_config(tmp_path, particles, step_size=0.2)
    assert_user_error(
        run("optimize", "--config", other, "--out", out, "--resume"), "other settings"
    )
    assert (out / "config.yaml").read_text() == cfg_before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"no_such_option": 1}, ["no_such_option", "unknown option"]),
        ({"step_size": -1.0}, ["step_size", "greater than 0"]),
        (
            {"projector": {"kind": "langevin", "langevin": {"step": 5.0}}},
            ["projector.langevin.step"],
        ),
        ({"optimizer": "lbfgs"}, ["optimizer"]),
    ],
)
def test_bad_configs_fail_clearly_and_write_nothing(particles, tmp_path, change, words):
    cfg = write_config(tmp_path, particles, **change)
    out = tmp_path / "run"
    assert_user_error(run("optimize", "--config", cfg, "--out", out), *words)
    assert not out.exists()


def test_missing_particles_and_different_topologies_fail_clearly(particles, tmp_path):
    out = tmp_path / "run"
    cfg = write_config(tmp_path, tmp_path / "missing.star")
    assert_user_error(run("optimize", "--config", cfg, "--out", out), "missing.star", "not found")
    assert not out.exists()
    cfg = write_config(tmp_path, particles, walkers=[str(ALA / "initial_model_0.pdb"), str(ADK)])
    assert_user_error(run("optimize", "--config", cfg, "--out", out), "same atoms")
    assert not out.exists()
    # an existing output folder is not touched by a failing run, even with --overwrite
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert_user_error(run("optimize", "--config", cfg, "--out", out, "--overwrite"), "same atoms")
    assert (out / "keep.txt").read_text() == "precious"
    assert_user_error(
        run("optimize", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "x"),
        "config file not found",
    )
