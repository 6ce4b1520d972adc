"""Interoperability with the real RELION 3.1 programs (relion_reconstruct, relion_project,
relion_star_handler). Slow; skipped where RELION is not installed (CI installs it: make relion).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from cryoensemble.cli.main import app
from cryoensemble.io import ParticleDataset, read_map, read_particles, read_stack
from cryoensemble.ndimage import lowpass

pytestmark = [
    pytest.mark.slow,
    pytest.mark.relion,
    pytest.mark.skipif(shutil.which("relion_project") is None, reason="RELION 3.1 not installed"),
]

runner = CliRunner()
ADK = Path(__file__).resolve().parents[2] / "src" / "cryoensemble" / "data" / "adk_open.pdb"


def cli(*args) -> None:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output


def relion(*args, cwd: Path) -> None:
    out = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def corr(a, b) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b)))


def test_relion_reconstruct_matches_render(tmp_path):
    """(a) relion_reconstruct --ctf of 3000 noise-free particles vs cryoensemble render."""
    n, px = 64, 2.4
    data = tmp_path / "data"
    cli(
        "simulate",
        "--structure",
        ADK,
        "--n-particles",
        3000,
        "--box-size",
        n,
        "--pixel-size",
        px,
        "--noise",
        "none",
        "--seed",
        1,
        "--quiet",
        "--no-gallery",
        "--out",
        data,
    )
    # relion_reconstruct resolves image paths against its working directory
    relion(
        "relion_reconstruct",
        "--i",
        "particles.star",
        "--o",
        "rec.mrc",
        "--ctf",
        "--angpix",
        px,
        cwd=data,
    )
    cli("render", ADK, "--box-size", n, "--pixel-size", px, "--out", tmp_path / "ref.mrc")
    rec, v_rec = read_map(data / "rec.mrc")
    ref, _ = read_map(tmp_path / "ref.mrc")
    assert rec.shape == ref.shape and v_rec == pytest.approx(px, rel=1e-3)
    c = corr(
        np.asarray(lowpass(jnp.asarray(rec), px, 8.0, ndim=3)),
        np.asarray(lowpass(jnp.asarray(ref), px, 8.0, ndim=3)),
    )
    print(f"relion_reconstruct vs render, 8 A low-pass: correlation {c:.5f}")
    assert c >= 0.99


@pytest.mark.parametrize("with_ctf", [True, False], ids=["ctf", "no_ctf"])
def test_relion_project_matches_simulate_from_star(tmp_path, with_ctf):
    """(b) relion_project of the rendered map at our STAR's poses/CTF vs simulate --from-star."""
    n, px = 96, 1.5
    data = tmp_path / "data"
    cli(
        "simulate",
        "--structure",
        ADK,
        "--n-particles",
        40,
        "--box-size",
        n,
        "--pixel-size",
        px,
        "--noise",
        "none",
        "--seed",
        2,
        "--quiet",
        "--no-gallery",
        "--out",
        data,
    )
    cli("render", ADK, "--box-size", n, "--pixel-size", px, "--out", data / "map.mrc")
    args = [
        "relion_project",
        "--i",
        "map.mrc",
        "--ang",
        "particles.star",
        "--o",
        "proj",
        "--angpix",
        px,
    ] + (["--ctf"] if with_ctf else [])
    relion(*args, cwd=data)
    ours = tmp_path / "ours"
    cli(
        "simulate",
        "--structure",
        ADK,
        "--from-star",
        data / "particles.star",
        "--pad-factor",
        1,
        "--noise",
        "none",
        "--quiet",
        "--no-gallery",
        "--out",
        ours,
        *([] if with_ctf else ["--no-ctf"]),
    )
    theirs = np.asarray(lowpass(jnp.asarray(read_stack(data / "proj.mrcs")), px, 4.0))
    mine = np.asarray(lowpass(jnp.asarray(read_stack(ours / "particles_00000.mrcs")), px, 4.0))
    assert theirs.shape == mine.shape == (40, n, n)
    cs = [corr(a, b) for a, b in zip(theirs, mine, strict=True)]
    print(
        f"relion_project vs simulate --from-star (ctf={with_ctf}), 4 A low-pass: "
        f"min correlation {min(cs):.5f}, mean {np.mean(cs):.5f}"
    )
    assert min(cs) >= 0.99

    # (c) the STAR file RELION wrote is read, validated and usable as --from-star
    table = read_particles(data / "proj.star", require_poses=True)
    ds = ParticleDataset(data / "proj.star")
    assert len(ds) == 40 and ds.box_size == n and ds.pixel_size == pytest.approx(px)
    np.testing.assert_allclose(ds.read_images([0, 39]), read_stack(data / "proj.mrcs", [0, 39]))
    ref = read_particles(data / "particles.star").particles
    for col in ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnDefocusU", "rlnDefocusV"]:
        np.testing.assert_allclose(table.particles[col], ref[col], rtol=1e-4, atol=1e-3)
    cli(
        "simulate",
        "--structure",
        ADK,
        "--from-star",
        data / "proj.star",
        "--noise",
        "none",
        "--quiet",
        "--no-gallery",
        "--out",
        tmp_path / "from_relion",
    )


def test_relion_reconstruct_applies_no_ctf_to_a_no_ctf_dataset(tmp_path):
    """(issue 9, item 7) A --no-ctf dataset's STAR describes the identity CTF: relion_reconstruct
    --ctf gives the same map as without --ctf, and that map is the model's."""
    n, px = 48, 3.0
    data = tmp_path / "data"
    cli(
        "simulate",
        "--structure",
        ADK,
        "--no-ctf",
        "--n-particles",
        1500,
        "--box-size",
        n,
        "--pixel-size",
        px,
        "--noise",
        "none",
        "--seed",
        3,
        "--quiet",
        "--no-gallery",
        "--out",
        data,
    )
    relion(
        "relion_reconstruct",
        "--i",
        "particles.star",
        "--o",
        "ctf.mrc",
        "--ctf",
        "--angpix",
        px,
        cwd=data,
    )
    relion(
        "relion_reconstruct", "--i", "particles.star", "--o", "plain.mrc", "--angpix", px, cwd=data
    )
    with_ctf, _ = read_map(data / "ctf.mrc")
    plain, _ = read_map(data / "plain.mrc")
    np.testing.assert_allclose(with_ctf, plain, rtol=0, atol=1e-5 * np.abs(plain).max())
    cli("render", ADK, "--box-size", n, "--pixel-size", px, "--out", tmp_path / "ref.mrc")
    ref, _ = read_map(tmp_path / "ref.mrc")
    c = corr(
        np.asarray(lowpass(jnp.asarray(with_ctf), px, 10.0, ndim=3)),
        np.asarray(lowpass(jnp.asarray(ref), px, 10.0, ndim=3)),
    )
    print(f"relion_reconstruct --ctf of a --no-ctf dataset vs render, 10 A low-pass: {c:.5f}")
    assert c >= 0.99


def test_read_star_written_by_relion_star_handler(tmp_path):
    data = tmp_path / "data"
    cli(
        "simulate",
        "--structure",
        ADK,
        "--n-particles",
        10,
        "--box-size",
        32,
        "--pixel-size",
        4,
        "--selection",
        "heavy",
        "--noise",
        "none",
        "--quiet",
        "--no-gallery",
        "--out",
        data,
    )
    relion("relion_star_handler", "--i", "particles.star", "--o", "handled.star", cwd=data)
    ours = read_particles(data / "particles.star")
    theirs = read_particles(data / "handled.star")
    assert len(theirs) == 10
    # RELION keeps our cryoensemble* columns (it warns about unknown labels and maintains them)
    assert (theirs.particles.cryoensembleStructureIndex == 0).all()
    assert list(theirs.particles.rlnImageName) == list(ours.particles.rlnImageName)
    for col in ["rlnAngleRot", "rlnOriginXAngst", "rlnDefocusU", "rlnDefocusAngle"]:
        np.testing.assert_allclose(theirs.particles[col], ours.particles[col], rtol=1e-5, atol=1e-4)
    ds = ParticleDataset(data / "handled.star")
    np.testing.assert_array_equal(
        ds.read_images([3]), read_stack(data / "particles_00000.mrcs", [3])
    )
