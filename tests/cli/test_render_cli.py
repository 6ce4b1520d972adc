"""``cryoensemble render``: atomic model -> MRC map."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from cryoensemble.cli.main import app
from cryoensemble.io import read_map
from cryoensemble.structure import read_structure
from cryoensemble.workflows.render import reference_map

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_render_writes_the_reference_map(tmp_path, data_dir):
    pdb = data_dir / "adk_open.pdb"
    out = tmp_path / "map.mrc"
    r = run("render", pdb, "--box-size", 24, "--pixel-size", 5, "--out", out)
    assert r.exit_code == 0, r.output
    vol, voxel = read_map(out)
    assert vol.shape == (24, 24, 24) and voxel == 5.0
    np.testing.assert_array_equal(vol, reference_map(read_structure(pdb), 24, 5.0))
    assert (tmp_path / "map.mrc.provenance.json").is_file()
    # centre of mass at voxel N // 2
    grid = np.arange(24) - 12
    c = [(vol.sum(axis=a) * grid).sum() / vol.sum() for a in [(1, 2), (0, 2), (0, 1)]]
    assert np.abs(c).max() < 0.3

    r = run("render", pdb, "--box-size", 24, "--pixel-size", 5, "--out", out)
    assert r.exit_code == 1 and "already exists" in r.output and "Traceback" not in r.output

    r = run(
        "render",
        pdb,
        "--box-size",
        24,
        "--pixel-size",
        5,
        "--out",
        out,
        "--overwrite",
        "--b-factor",
        100,
        "--lowpass",
        15,
        "--no-center",
    )
    assert r.exit_code == 0, r.output
    vol2, _ = read_map(out)
    expected = reference_map(read_structure(pdb), 24, 5.0, center=False, b_factor=100, lowpass=15)
    np.testing.assert_array_equal(vol2, expected)


def test_render_user_errors(tmp_path, data_dir):
    r = run(
        "render",
        tmp_path / "nope.pdb",
        "--box-size",
        16,
        "--pixel-size",
        2,
        "--out",
        tmp_path / "m.mrc",
    )
    assert r.exit_code == 1 and "nope.pdb" in r.output and "Traceback" not in r.output
    r = run(
        "render",
        data_dir / "adk_open.pdb",
        "--box-size",
        16,
        "--pixel-size",
        -2,
        "--out",
        tmp_path / "m.mrc",
    )
    assert r.exit_code == 1 and "pixel-size" in r.output
    r = run(
        "render",
        data_dir / "adk_open.pdb",
        "--box-size",
        16,
        "--pixel-size",
        2,
        "--selection",
        "bogus",
        "--out",
        tmp_path / "m.mrc",
    )
    assert r.exit_code == 1 and "bogus" in r.output
    assert list(tmp_path.iterdir()) == []
