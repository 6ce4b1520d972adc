"""The real-data nuisances of ``simulate`` (pose errors, envelope, amplitudes, ice, per-micrograph
noise, normalisation, inversion), the no-CTF STAR file and optional stacks with ``from_star``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import yaml

from cryoensemble.errors import ConfigError, InputError
from cryoensemble.io import read_particles, read_stack
from cryoensemble.io._star import particle_arrays
from cryoensemble.ndimage import frequency_grid, radial_average
from cryoensemble.noise import ice_psd
from cryoensemble.optics import ctf
from cryoensemble.workflows.simulate import (
    NUISANCES,
    SimulateConfig,
    load_config,
    regenerate_images,
    resolve_config,
    run,
)

SMALL = dict(
    n_particles=16, box_size=32, pixel_size=4.0, batch_size=8, selection="heavy", gallery=False
)
GAUSS = dict(noise="gaussian", snr=0.5, seed=5)
TODAY_STAR = [
    "rlnImageName",
    "rlnAngleRot",
    "rlnAngleTilt",
    "rlnAnglePsi",
    "rlnOriginXAngst",
    "rlnOriginYAngst",
    "rlnDefocusU",
    "rlnDefocusV",
    "rlnDefocusAngle",
    "rlnPhaseShift",
    "rlnCtfBfactor",
    "rlnCtfScalefactor",
    "rlnOpticsGroup",
    "cryoensembleStructureIndex",
    "cryoensembleStructureFile",
]
TODAY_TRUTH = [
    "particle",
    "image_name",
    "structure_index",
    "structure_file",
    "rot_deg",
    "tilt_deg",
    "psi_deg",
    "shift_x_A",
    "shift_y_A",
    "defocus_u_A",
    "defocus_v_A",
    "defocus_angle_deg",
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """sim(**options) -> folder of a small dataset (each set of options simulated once)."""
    folders: dict[tuple, Path] = {}

    def make(**options) -> Path:
        key = tuple(sorted(options.items()))
        if key not in folders:
            out = tmp_path_factory.mktemp("sim") / "data"
            run(load_config(**{**SMALL, **options}), out)
            folders[key] = out
        return folders[key]

    return make


def stack(folder: Path) -> np.ndarray:
    return read_stack(folder / "particles_00000.mrcs")


def star(folder: Path) -> pd.DataFrame:
    return read_particles(folder / "particles.star").particles


def truth(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "ground_truth.csv")


def config_yaml(folder: Path) -> dict:
    return yaml.safe_load((folder / "config.yaml").read_text())


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


# ---------------------------------------------------------------------------- defaults
def test_defaults_are_todays_dataset(sim):
    """With every nuisance off: today's columns, and noisy = clean + sigma x the documented
    white-noise draws (keys fold_in(fold_in(key(seed), 1), batch))."""
    folder, clean = sim(**GAUSS), stack(sim(noise="none", seed=5))
    assert star(folder).columns.tolist() == TODAY_STAR
    assert truth(folder).columns.tolist() == TODAY_TRUTH
    cfg = config_yaml(folder)
    assert not SimulateConfig(**cfg).nuisances and cfg["check_stacks"] is False
    sigma = summary(folder)["noise_sigma"]
    assert summary(folder)["noise_levels"] == {"sigma": sigma, "white": sigma, "ice": 0.0}
    key = jax.random.fold_in(jax.random.key(5), 1)
    draws = [jax.random.normal(jax.random.fold_in(key, b), (8, 32, 32)) for b in (0, 1)]
    expected = clean + np.float32(sigma) * np.concatenate([np.asarray(d) for d in draws])
    np.testing.assert_allclose(stack(folder), expected, rtol=0, atol=1e-6 * np.abs(clean).max())


# ---------------------------------------------------------------------------- pose errors
def test_pose_errors_have_the_sigma():
    base = resolve_config(SimulateConfig(n_particles=3000, seed=1))[2]
    p = resolve_config(
        SimulateConfig(n_particles=3000, seed=1, pose_error_deg=3.0, shift_error_A=1.5)
    )[2]
    for col, sigma in [
        ("AngleRot", 3.0),
        ("AngleTilt", 3.0),
        ("AnglePsi", 3.0),
        ("OriginXAngst", 1.5),
        ("OriginYAngst", 1.5),
    ]:
        np.testing.assert_array_equal(p[f"cryoensembleTrue{col}"], base[f"rln{col}"])
        error = (p[f"rln{col}"] - p[f"cryoensembleTrue{col}"]).to_numpy()
        assert error.std() == pytest.approx(sigma, rel=0.1), col
        assert abs(error.mean()) < 4 * sigma / math.sqrt(len(error)), col


def test_pose_errors_in_star_true_poses_imaged(sim):
    folder, base = sim(**GAUSS, pose_error_deg=4.0, shift_error_A=2.0), sim(**GAUSS)
    # the images are those of the true poses: bit for bit the dataset without pose errors
    np.testing.assert_array_equal(stack(folder), stack(base))
    p, p0 = star(folder), star(base)
    np.testing.assert_allclose(p.cryoensembleTrueAngleRot, p0.rlnAngleRot)
    assert np.abs(p.rlnAngleRot - p0.rlnAngleRot).max() > 1.0  # the STAR holds perturbed poses
    t = truth(folder)
    np.testing.assert_allclose(t.rot_deg, p0.rlnAngleRot)  # ground truth: the true pose
    np.testing.assert_allclose(t.star_rot_deg, p.rlnAngleRot)  # and what the STAR says
    np.testing.assert_allclose(t.star_shift_y_A, p.rlnOriginYAngst)
    np.testing.assert_allclose(t.shift_y_A, p0.rlnOriginYAngst)
    assert config_yaml(folder)["pose_error_deg"] == 4.0


# ---------------------------------------------------------------------------- signal
def test_envelope_multiplies_the_transform(sim):
    b = 300.0
    base, folder = sim(noise="none", seed=5), sim(noise="none", seed=5, envelope_b_factor=b)
    kx, ky = frequency_grid(32, 4.0)
    filt = np.exp(-b * (np.asarray(kx) ** 2 + np.asarray(ky) ** 2) / 4)
    ft0 = np.fft.rfft2(stack(base).astype(np.float64))
    ft = np.fft.rfft2(stack(folder).astype(np.float64))
    np.testing.assert_allclose(ft, ft0 * filt, rtol=0, atol=1e-5 * np.abs(ft0).max())
    assert filt.min() < 0.2  # the envelope matters at these frequencies
    # not written to the STAR file, recorded in config.yaml
    assert (star(folder).rlnCtfBfactor == 0).all()
    assert star(folder).columns.tolist() == TODAY_STAR
    assert config_yaml(folder)["envelope_b_factor"] == b


def test_amplitude_log_normal():
    p = resolve_config(SimulateConfig(n_particles=4000, seed=2, amplitude_spread=0.3))[2]
    a = p.cryoensembleAmplitude.to_numpy()
    assert np.log(a).std() == pytest.approx(0.3, rel=0.05)
    assert a.mean() == pytest.approx(1.0, abs=0.02)


def test_amplitude_scales_the_images(sim):
    base, folder = sim(noise="none", seed=5), sim(noise="none", seed=5, amplitude_spread=0.5)
    a = star(folder).cryoensembleAmplitude.to_numpy()
    np.testing.assert_allclose(truth(folder).amplitude, a)
    assert a.std() > 0.1
    clean = stack(base)
    np.testing.assert_allclose(
        stack(folder), a[:, None, None] * clean, rtol=1e-5, atol=1e-6 * np.abs(clean).max()
    )


# ---------------------------------------------------------------------------- noise
def _ring_sum(power: np.ndarray) -> np.ndarray:
    return np.asarray(radial_average(jnp.asarray(power.sum(axis=0))))[1:17]


def test_ice_is_ctf_modulated_and_has_its_fraction(sim):
    f = 0.6
    clean = stack(sim(noise="none", seed=5))
    folder = sim(**GAUSS, ice_fraction=f)
    noise_f, noise_0 = stack(folder) - clean, stack(sim(**GAUSS)) - clean
    levels = summary(folder)["noise_levels"]
    sigma = levels["sigma"]
    assert sigma == summary(sim(**GAUSS))["noise_sigma"]
    assert levels["white"] == pytest.approx(sigma * math.sqrt(1 - f))
    # the white part is the same draw, scaled: what is left is the ice
    ice = (noise_f - math.sqrt(1 - f) * noise_0)[:8]  # the first batch sets the ice level
    assert ice.var() / sigma**2 == pytest.approx(f, rel=0.15)
    assert noise_f[:8].var() / sigma**2 == pytest.approx(1.0, rel=0.15)
    # its power spectrum is the ice spectrum times each particle's CTF^2
    kx, ky = frequency_grid(32, 4.0)
    params = particle_arrays(read_particles(folder / "particles.star"), np.arange(8))["ctf"]
    ctf2 = np.asarray(jax.vmap(lambda p: ctf(p, kx, ky))(params)) ** 2
    unit = np.asarray(ice_psd(32, 4.0)) * levels["ice"] ** 2
    measured = _ring_sum(np.abs(np.fft.rfft2(ice.astype(np.float64))) ** 2 / 32**2)
    modulated = _ring_sum(unit * ctf2)
    assert np.mean(np.abs(measured / modulated - 1)) < 0.15
    unmodulated = _ring_sum(np.broadcast_to(unit, ctf2.shape))
    assert np.mean(np.abs(measured / unmodulated - 1)) > 0.3  # the check tells them apart
    assert config_yaml(folder)["ice_fraction"] == f


def test_micrograph_noise_levels(sim):
    clean = stack(sim(noise="none", seed=5))
    folder = sim(**GAUSS, micrograph_noise_spread=0.5, particles_per_micrograph=4)
    p = star(folder)
    assert p.rlnMicrographName.tolist() == [f"mic_{i // 4 + 1:05d}.mrc" for i in range(16)]
    g = p.cryoensembleNoiseScale.to_numpy()
    assert all(len(set(g[i : i + 4])) == 1 for i in range(0, 16, 4)) and len(set(g)) == 4
    np.testing.assert_allclose(truth(folder).noise_scale, g)
    assert truth(folder).micrograph.tolist() == p.rlnMicrographName.tolist()
    # the same white draws, scaled per micrograph
    noise_0 = stack(sim(**GAUSS)) - clean
    np.testing.assert_allclose(
        stack(folder) - clean, g[:, None, None] * noise_0, rtol=1e-4, atol=1e-5 * noise_0.std()
    )
    spread = resolve_config(
        SimulateConfig(n_particles=5000, micrograph_noise_spread=0.5, particles_per_micrograph=1)
    )[2].cryoensembleNoiseScale.to_numpy()
    assert np.log(spread).std() == pytest.approx(0.5, rel=0.05)
    assert spread.mean() == pytest.approx(1.0, abs=0.03)


# ---------------------------------------------------------------------------- preprocessing
def test_invert_and_normalize(sim):
    base = stack(sim(**GAUSS))
    np.testing.assert_array_equal(stack(sim(**GAUSS, invert_contrast=True)), -base)
    folder = sim(**GAUSS, invert_contrast=True, normalize=True)
    images = stack(folder).astype(np.float64)
    c = np.arange(32) - 16
    background = np.hypot(c[:, None], c[None, :]) > 15  # default radius box // 2 - 1
    np.testing.assert_allclose(images[:, background].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(images[:, background].std(axis=1), 1.0, rtol=1e-4)
    t = truth(folder)
    assert (t.image_scale < 0).all()  # inverted
    expected = (
        t.image_scale.to_numpy()[:, None, None] * base + t.image_offset.to_numpy()[:, None, None]
    )
    np.testing.assert_allclose(images, expected, rtol=1e-4, atol=1e-4)
    cfg = config_yaml(folder)
    assert cfg["normalize"] is True and cfg["invert_contrast"] is True


# ---------------------------------------------------------------------------- all together
ALL = dict(
    pose_error_deg=3.0,
    shift_error_A=1.0,
    envelope_b_factor=100.0,
    amplitude_spread=0.3,
    ice_fraction=0.5,
    micrograph_noise_spread=0.3,
    particles_per_micrograph=5,
    normalize=True,
    invert_contrast=True,
)


def test_all_nuisances_record_themselves_and_regenerate(sim):
    folder = sim(**GAUSS, **ALL)
    assert regenerate_images(folder)[1].tobytes() == stack(folder).tobytes()
    cfg = config_yaml(folder)
    assert {k: cfg[k] for k in ALL} == ALL
    assert SimulateConfig(**cfg).nuisances == {k: v for k, v in ALL.items() if k in NUISANCES}
    columns = set(star(folder).columns)
    assert {
        "cryoensembleTrueAngleRot",
        "cryoensembleTrueOriginXAngst",
        "cryoensembleAmplitude",
        "rlnMicrographName",
        "cryoensembleNoiseScale",
    } <= columns
    assert {
        "star_rot_deg",
        "amplitude",
        "micrograph",
        "noise_scale",
        "image_scale",
        "image_offset",
    } <= set(truth(folder).columns)
    s = summary(folder)
    assert s["noise_levels"]["ice"] > 0 and s["config"]["ice_fraction"] == 0.5


def test_nuisance_options_are_validated():
    cases = [
        ({"ice_fraction": 0.5, "noise": "poisson", "dose": 10.0}, "ice_fraction"),
        ({"micrograph_noise_spread": 0.2, "noise": "none"}, "micrograph_noise_spread"),
        ({"normalize": True, "noise": "none"}, "normalize"),
        ({"ice_fraction": 1.0}, "ice_fraction"),
        ({"pose_error_deg": -1.0}, "pose_error_deg"),
        ({"amplitude_spread": -0.1}, "amplitude_spread"),
        ({"normalize_radius": 16, "box_size": 32}, "normalize_radius"),
        ({"particles_per_micrograph": 0}, "particles_per_micrograph"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ConfigError, match=field):
            load_config(**kwargs)


# ---------------------------------------------------------------------------- item 7
def test_no_ctf_star_describes_the_identity_ctf(sim, tmp_path):
    folder = sim(noise="none", seed=5, apply_ctf=False)
    table = read_particles(folder / "particles.star")
    assert (table.particles.rlnDefocusU == 0).all() and (table.particles.rlnDefocusV == 0).all()
    assert (table.optics.rlnSphericalAberration == 0).all()
    q0, shift = table.optics.rlnAmplitudeContrast[0], table.particles.rlnPhaseShift[0]
    # RELION's CTF without defocus and Cs: -sin(-phase shift - asin(Q0)), written out here
    assert -math.sin(-math.radians(shift) - math.asin(q0)) == pytest.approx(1.0, abs=1e-12)
    kx, ky = frequency_grid(32, 4.0)
    params = particle_arrays(table)["ctf"]
    values = np.asarray(jax.vmap(lambda p: ctf(p, kx, ky))(params))
    np.testing.assert_allclose(values, 1.0, atol=1e-6)
    # a program applying the STAR's CTF reproduces the images: simulate --from-star with CTF on
    again = tmp_path / "again"
    run(load_config(from_star=folder / "particles.star", noise="none", selection="heavy"), again)
    images = stack(folder)
    np.testing.assert_allclose(stack(again), images, rtol=1e-4, atol=1e-5 * np.abs(images).max())


def test_from_star_does_not_need_the_stacks(sim, tmp_path):
    source = sim(**GAUSS, **ALL)
    template = tmp_path / "template"
    template.mkdir()
    shutil.copy(source / "particles.star", template / "particles.star")  # no stacks
    out = tmp_path / "out"
    s = run(
        load_config(from_star=template / "particles.star", noise="none", selection="heavy"), out
    )
    assert s.n_particles == 16
    p, src = star(out), star(source)
    # the template's poses are the ones simulated; its ground-truth columns are not carried over
    np.testing.assert_allclose(p.rlnAngleRot, src.rlnAngleRot)
    assert not [c for c in p.columns if c.startswith("cryoensembleTrue")]
    assert "cryoensembleAmplitude" not in p.columns
    with pytest.raises(InputError, match="not found.*--no-check-stacks"):
        resolve_config(load_config(from_star=template / "particles.star", check_stacks=True))
