"""``cryoensemble poses``: outputs, ground-truth errors, image paths, user errors."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from cryoensemble.cli.main import app
from cryoensemble.imaging import ImagingConfig, simulate_images_jit
from cryoensemble.io import (
    MrcStackWriter,
    ParticleDataset,
    format_image_name,
    read_particles,
    write_particles,
)
from cryoensemble.noise import add_gaussian_noise, snr_noise_sigma
from cryoensemble.optics import CTFParams
from cryoensemble.pose import euler_to_matrix, random_euler_angles
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure

BOX, PX, N = 32, 4.8, 6


def _project(folder, data_dir):
    m = read_structure(data_dir / "adk_open.pdb")
    atoms = gaussian_atoms(m, selection="all", center=m.center_of_mass())
    rot, tilt, psi = random_euler_angles(jax.random.key(0), N)
    rng = np.random.default_rng(0)
    shifts = rng.uniform(-4, 4, (N, 2)).astype(np.float32)
    du = rng.uniform(8000, 20000, N).astype(np.float32)
    ctf = CTFParams(defocus_u=du)
    clean = simulate_images_jit(
        atoms,
        euler_to_matrix(rot, tilt, psi),
        jnp.asarray(shifts),
        ctf,
        ImagingConfig.for_atoms(atoms, BOX, PX),
    )
    images = np.asarray(add_gaussian_noise(jax.random.key(1), clean, snr_noise_sigma(clean, 5.0)))
    (folder / "stacks").mkdir(parents=True)
    with MrcStackWriter(folder / "stacks" / "p.mrcs", BOX, PX) as w:
        w.append(images)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnVoltage": 300.0,
            "rlnSphericalAberration": 2.7,
            "rlnAmplitudeContrast": 0.1,
            "rlnImagePixelSize": PX,
            "rlnImageSize": BOX,
        }
    )
    f = lambda a: np.asarray(a, np.float64)
    parts = pd.DataFrame(
        {
            "rlnImageName": [format_image_name(i + 1, "stacks/p.mrcs") for i in range(N)],
            "rlnAngleRot": f(rot),
            "rlnAngleTilt": f(tilt),
            "rlnAnglePsi": f(psi),
            "rlnOriginXAngst": f(shifts[:, 0]),
            "rlnOriginYAngst": f(shifts[:, 1]),
            "rlnDefocusU": f(du),
            "rlnDefocusV": f(du),
            "rlnOpticsGroup": 1,
            "cryoensembleStructureIndex": 0,
        }
    )
    return write_particles(folder / "particles.star", (optics, parts))


def test_poses_cli(tmp_path, data_dir):
    star = _project(tmp_path / "proj", data_dir)
    out = tmp_path / "poses"
    args = [
        "poses", "--particles", str(star), "--structure", str(data_dir / "adk_open.pdb"),
        "--out", str(out), "--base-level", "1", "--n-refine", "1", "--candidates", "2",
        "--quiet",
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    for f in [
        "particles.star",
        "report.json",
        "angular_distribution.png",
        "angular_error.png",
        "likelihood_matrix.npy",
        "particle_indices.npy",
        "provenance.json",
    ]:
        assert (out / f).is_file(), f
    rep = json.loads((out / "report.json").read_text())
    assert rep["n_particles"] == N and rep["search"]["final_resolution_deg"] == 15.0
    assert rep["ground_truth"] and rep["angular_error"]["median_deg"] < 15.0
    assert rep["grid_levels"][0]["n_rotations"] == 576 and rep["grid_levels"][0]["mean_nn"] > 25
    t = read_particles(out / "particles.star").particles
    for c in [
        "cryoensemblePoseLogLikelihood",
        "cryoensemblePoseMarginalLogLikelihood",
        "cryoensembleAngularError",
        "cryoensembleInputAngleRot",
        "cryoensembleStructureIndex",
    ]:
        assert c in t.columns, c
    np.testing.assert_allclose(t["rlnAngleRot"] - t["cryoensembleInputAngleRot"], 0, atol=360)
    assert not np.allclose(t["rlnAngleRot"], t["cryoensembleInputAngleRot"])
    assert np.all(t["cryoensemblePoseMarginalLogLikelihood"] <= t["cryoensemblePoseLogLikelihood"])
    # image names resolve from anywhere (absolute paths to the original stack)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        ds = ParticleDataset(out / "particles.star")
        orig = ParticleDataset(star)
        np.testing.assert_array_equal(ds.read_images([0, 5]), orig.read_images([0, 5]))
    finally:
        os.chdir(cwd)
    # refuses to overwrite; --truth none skips the error outputs
    assert CliRunner().invoke(app, args).exit_code == 1
    res = CliRunner().invoke(app, args + ["--overwrite", "--truth", "none", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert not (out / "angular_error.png").exists()
    assert "angular_error" not in json.loads((out / "report.json").read_text())


def test_poses_cli_errors(tmp_path, data_dir):
    star = _project(tmp_path / "proj", data_dir)
    runner = CliRunner()
    base = ["poses", "--particles", str(star), "--out", str(tmp_path / "o")]
    res = runner.invoke(app, base + ["--structure", str(tmp_path / "nope.pdb")])
    assert res.exit_code == 1 and "not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, base + ["--structure", str(data_dir / "adk_open.pdb"), "--likelihood", "white"]
    )
    assert res.exit_code == 1 and "sigma" in res.output
    res = runner.invoke(
        app, base + ["--structure", str(data_dir / "adk_open.pdb"), "--truth", "maybe"]
    )
    assert res.exit_code == 1 and "--truth" in res.output
    assert not (tmp_path / "o").exists()
