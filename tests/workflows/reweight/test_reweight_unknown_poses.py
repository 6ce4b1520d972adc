"""Reweighting without poses: the pose-marginalised likelihood through reweight and its CLI."""

import json

import pytest
from test_reweight import make_project  # noqa: E402  (this folder is on sys.path)
from typer.testing import CliRunner

from cryoensemble.cli.main import app


@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    from pathlib import Path

    data = Path(__file__).resolve().parents[3] / "src" / "cryoensemble" / "data"
    folder = tmp_path_factory.mktemp("adk_unknown")
    star, frac, _ = make_project(folder, data, n=24, box=32, px=4.8, snr=1.0, exact_counts=True)
    return star, frac, data


def test_cli_reweights_without_poses(small_project, tmp_path):
    star, frac, data = small_project
    out = tmp_path / "rw"
    res = CliRunner().invoke(
        app,
        ["reweight", "--structure", str(data / "adk_open.pdb"), "--structure",
         str(data / "adk_closed.pdb"), "--particles", str(star), "--out", str(out),
         "--unknown-poses", "--quiet", "--no-plots", "--n-samples", "300", "--burn-in", "50",
         "--heldout-fraction", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    w = json.loads((out / "weights.json").read_text())
    assert w["unknown_poses"] is True
    # 24 particles: the realised open fraction is recovered to within one particle.
    assert abs(w["map"][0] - frac) <= 1 / 24 + 1e-6


def test_unknown_poses_rejects_masks(small_project, tmp_path):
    star, _, data = small_project
    res = CliRunner().invoke(
        app,
        ["reweight", "--structure", str(data / "adk_open.pdb"), "--particles", str(star),
         "--out", str(tmp_path / "x"), "--unknown-poses", "--mask-radius", "40"],
    )  # fmt: skip
    assert res.exit_code != 0 and "--unknown-poses" in res.output
    assert not (tmp_path / "x").exists()
