"""Reweighting adenylate kinase open/closed from simulated particles; the CLI contract; errors."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cryoensemble.cli.main import app
from cryoensemble.errors import InputError
from cryoensemble.imaging import ImagingConfig, simulate_images_jit
from cryoensemble.io import MrcStackWriter, format_image_name, read_stack, write_particles
from cryoensemble.noise import add_gaussian_noise, snr_noise_sigma
from cryoensemble.optics import CTFParams
from cryoensemble.pose import euler_to_matrix, random_euler_angles
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import load_structures, read_structure, write_pdb
from cryoensemble.workflows.reweight import prepare_atoms, reweight


def make_project(
    folder,
    data_dir,
    n=300,
    box=64,
    px=2.4,
    w_open=0.7,
    snr=0.1,
    seed=0,
    invert=False,
    exact_counts=False,
):
    """Simulate ADK particles (open with probability w_open, or exactly round(w_open n) open
    particles in random order), write stack + STAR; return (star, realised open fraction, sigma)."""
    ms = [read_structure(data_dir / f"adk_{k}.pdb") for k in ("open", "closed")]
    atoms = [gaussian_atoms(m, selection="all", center=m.center_of_mass()) for m in ms]
    config = ImagingConfig.for_atoms(atoms[0], box, px)
    key = jax.random.key(seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    rot_a, tilt_a, psi_a = random_euler_angles(k1, n)
    rng = np.random.default_rng(seed)
    z = (rng.random(n) >= w_open).astype(int)  # 0 open, 1 closed
    if exact_counts:
        z = rng.permutation((np.arange(n) >= round(w_open * n)).astype(int))
    shifts = rng.normal(size=(n, 2)).astype(np.float32) * 2
    du = rng.uniform(8000, 20000, n).astype(np.float32)
    dv = (du + rng.uniform(-500, 500, n)).astype(np.float32)
    dang = rng.uniform(0, 180, n).astype(np.float32)
    rot = euler_to_matrix(rot_a, tilt_a, psi_a)
    ctf = CTFParams(defocus_u=du, defocus_v=dv, defocus_angle=dang)
    imgs = [simulate_images_jit(a, rot, jnp.asarray(shifts), ctf, config) for a in atoms]
    clean = jnp.where(jnp.asarray(z)[:, None, None] == 1, imgs[1], imgs[0])
    sigma = snr_noise_sigma(clean, snr)
    images = np.asarray(add_gaussian_noise(k4, clean, sigma), np.float32)
    if invert:
        images = -images
    folder.mkdir(parents=True, exist_ok=True)
    with MrcStackWriter(folder / "particles.mrcs", box, px) as w:
        w.append(images)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnVoltage": 300.0,
            "rlnSphericalAberration": 2.7,
            "rlnAmplitudeContrast": 0.1,
            "rlnImagePixelSize": px,
            "rlnImageSize": box,
        }
    )
    f = lambda a: np.asarray(a, np.float64)
    particles = pd.DataFrame(
        {
            "rlnImageName": [format_image_name(i + 1, "particles.mrcs") for i in range(n)],
            "rlnAngleRot": f(rot_a),
            "rlnAngleTilt": f(tilt_a),
            "rlnAnglePsi": f(psi_a),
            "rlnOriginXAngst": f(shifts[:, 0]),
            "rlnOriginYAngst": f(shifts[:, 1]),
            "rlnDefocusU": f(du),
            "rlnDefocusV": f(dv),
            "rlnDefocusAngle": f(dang),
            "rlnOpticsGroup": 1,
        }
    )
    star = write_particles(folder / "particles.star", (optics, particles))
    return star, 1.0 - z.mean(), float(sigma[0])


@pytest.fixture(scope="module")
def adk_project(tmp_path_factory):
    from pathlib import Path

    data = Path(__file__).resolve().parents[3] / "src" / "cryoensemble" / "data"
    folder = tmp_path_factory.mktemp("adk")
    return make_project(folder, data, exact_counts=True) + (data,)


def test_adk_fast_recovers_sample_fraction(adk_project):
    star, frac, sigma, data = adk_project
    models = load_structures([data / "adk_open.pdb", data / "adk_closed.pdb"])
    # exact poses, STAR without cryoensemble columns: the local pose marginalisation is off
    res = reweight(
        star, models, n_samples=1000, burn_in=100, heldout_fraction=0.2, local_poses="off"
    )
    s = res.summary
    # pixel likelihoods: assignments are nearly hard, so the weights equal the sample fraction
    assert abs(res.map_weights[0] - frac) < 0.01
    assert abs(s["mean"][0] - frac) < 0.02
    assert s["lower"][0] <= 0.7 <= s["upper"][0]
    assert res.converged and res.heldout["validation_gain"] > 0


def test_cli_contract_and_outputs(adk_project, tmp_path):
    star, frac, _, data = adk_project
    out = tmp_path / "rw"
    args = [
        "reweight",
        "--structure",
        str(data / "adk_open.pdb"),
        "--structure",
        str(data / "adk_closed.pdb"),
        "--particles",
        str(star),
        "--out",
        str(out),
        "--n-samples",
        "300",
        "--burn-in",
        "50",
        "--mask-radius",
        "60",
        "--quiet",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    w = json.loads((out / "weights.json").read_text())
    for k in [
        "weights",
        "lower",
        "upper",
        "credible_level",
        "names",
        "map",
        "n_iterations",
        "n_particles",
        "heldout",
        "structures",
        "mean",
    ]:
        assert k in w
    assert w["credible_level"] == 0.9 and w["names"] == ["adk_open", "adk_closed"]
    assert abs(w["weights"][0] - frac) < 0.03 and w["n_particles"] == 300
    assert all(
        lo <= m <= up for lo, m, up in zip(w["lower"], w["weights"], w["upper"], strict=True)
    )
    for f in [
        "weights.csv",
        "likelihood_matrix.npy",
        "particle_indices.npy",
        "weights.png",
        "assignments.png",
        "provenance.json",
        "posterior_samples.npy",
    ]:
        assert (out / f).exists(), f
    assert np.load(out / "likelihood_matrix.npy").shape == (300, 2)
    # refusing to overwrite
    assert CliRunner().invoke(app, args).exit_code == 1


def test_alignment_recovers_the_reference_frame(tmp_path, data_dir):
    closed = read_structure(data_dir / "adk_closed.pdb")
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved = closed.with_positions(closed.positions @ q.T + [30.0, -5.0, 12.0])
    write_pdb(moved, tmp_path / "closed_moved.pdb")
    moved = read_structure(tmp_path / "closed_moved.pdb")  # as written (3 decimals)
    mv = load_structures([tmp_path / "closed_moved.pdb"])
    atoms, info = prepare_atoms(mv, selection="heavy", align_to=closed)
    ref = gaussian_atoms(closed, selection="heavy", center=closed.center_of_mass())
    np.testing.assert_allclose(np.asarray(atoms[0].positions), np.asarray(ref.positions), atol=2e-3)
    assert info["alignment_rmsd"][0] < 1e-3
    # --no-center keeps the file's coordinates
    raw, _ = prepare_atoms(mv, selection="heavy", center=False)
    np.testing.assert_allclose(
        np.asarray(raw[0].positions), moved.heavy_atoms().positions, atol=1e-4
    )


def test_invert_contrast(adk_project, tmp_path):
    star, frac, sigma, data = adk_project
    # the same particles with inverted contrast in another stack
    images = read_stack(star.parent / "particles.mrcs")
    with MrcStackWriter(tmp_path / "particles.mrcs", images.shape[-1], 2.4) as w:
        w.append(-images)
    shutil.copy(star, tmp_path / "particles.star")
    models = load_structures([data / "adk_open.pdb", data / "adk_closed.pdb"])
    kw = dict(
        likelihood="white",
        noise_sigma=sigma,
        n_samples=100,
        burn_in=10,
        heldout_fraction=None,
        local_poses="off",  # exact poses
    )
    ref = reweight(star, models, **kw)
    good = reweight(tmp_path / "particles.star", models, invert_contrast=True, **kw)
    np.testing.assert_allclose(good.L, ref.L, rtol=1e-6)
    bad = reweight(tmp_path / "particles.star", models, invert_contrast=False, **kw)
    assert np.all(bad.L.max(1) < ref.L.max(1))
    assert abs(ref.map_weights[0] - frac) < 0.01


def test_bad_inputs(tmp_path, data_dir, adk_project):
    star, _, _, _ = adk_project
    runner = CliRunner()
    # different atom counts for a shared selection
    opn = read_structure(data_dir / "adk_open.pdb")
    write_pdb(opn.select(np.arange(opn.n_atoms - 10)), tmp_path / "short.pdb")
    res = runner.invoke(
        app,
        [
            "reweight",
            "--structure",
            str(data_dir / "adk_open.pdb"),
            "--structure",
            str(tmp_path / "short.pdb"),
            "--particles",
            str(star),
            "--out",
            str(tmp_path / "o1"),
        ],
    )
    assert res.exit_code == 1 and "different numbers of atoms" in res.output
    assert not (tmp_path / "o1").exists()
    with pytest.raises(InputError, match="same atoms"):
        prepare_atoms(load_structures([tmp_path / "short.pdb"]), align_to=opn)
    # an empty STAR file
    (tmp_path / "empty.star").write_text("")
    res = runner.invoke(
        app,
        [
            "reweight",
            "--structure",
            str(data_dir / "adk_open.pdb"),
            "--particles",
            str(tmp_path / "empty.star"),
            "--out",
            str(tmp_path / "o2"),
        ],
    )
    assert res.exit_code == 1 and "empty" in res.output
    # image size disagreeing with the optics block
    text = star.read_text().replace("64", "72", 1) if "rlnImageSize" in star.read_text() else None
    lines = star.read_text().splitlines()
    hdr = [ln for ln in lines if ln.startswith("_rlnImageSize")]
    assert hdr
    col = int(hdr[0].split("#")[1]) - 1
    out_lines, in_optics = [], False
    for ln in lines:
        if ln.startswith("data_optics"):
            in_optics = True
        elif ln.startswith("data_particles"):
            in_optics = False
        parts = ln.split()
        if in_optics and parts and parts[0] == "1" and len(parts) > col:
            parts[col] = "72"
            ln = " ".join(parts)
        out_lines.append(ln)
    bad_star = star.parent / "bad_size.star"
    bad_star.write_text("\n".join(out_lines) + "\n")
    del text
    res = runner.invoke(
        app,
        [
            "reweight",
            "--structure",
            str(data_dir / "adk_open.pdb"),
            "--particles",
            str(bad_star),
            "--out",
            str(tmp_path / "o3"),
        ],
    )
    assert res.exit_code == 1 and "72" in res.output and "64" in res.output
    # missing structure file, bad prior counts
    res = runner.invoke(
        app,
        [
            "reweight",
            "--structure",
            str(tmp_path / "nope.pdb"),
            "--particles",
            str(star),
            "--out",
            str(tmp_path / "o4"),
        ],
    )
    assert res.exit_code == 1 and "not found" in res.output


@pytest.mark.slow
@pytest.mark.parametrize("snr", [0.1, 0.01])
def test_adk_full_accuracy_and_coverage(tmp_path, data_dir, snr):
    """3000 particles, 128 x 128 at 1.2 A, weights 0.7/0.3, over several seeds."""
    models = load_structures([data_dir / "adk_open.pdb", data_dir / "adk_closed.pdb"])
    rows = []
    for seed in range(3):
        star, frac, _ = make_project(
            tmp_path / f"s{seed}", data_dir, n=3000, box=128, px=1.2, snr=snr, seed=seed
        )
        res = reweight(star, models, seed=seed, heldout_fraction=None, local_poses="off")
        s = res.summary
        rows.append((frac, s["mean"][0], s["lower"][0], s["upper"][0]))
    rows = np.array(rows)
    err_truth = np.abs(rows[:, 1] - 0.7)
    err_frac = np.abs(rows[:, 1] - rows[:, 0])
    covered = (rows[:, 2] <= 0.7) & (0.7 <= rows[:, 3])
    print(
        f"SNR {snr}: frac {rows[:, 0]}, mean {rows[:, 1]}, |err| truth {err_truth}, "
        f"|err| sample {err_frac}, width {rows[:, 3] - rows[:, 2]}, covered {covered}"
    )
    if snr >= 0.1:
        assert np.all(err_truth < 0.02) and np.all(err_frac < 0.005)
        assert covered.mean() >= 2 / 3
