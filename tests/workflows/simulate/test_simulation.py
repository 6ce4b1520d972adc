"""Tests of the simulation library: configuration, sampling, the write loop, reference maps."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import ConfigError
from cryoensemble.imaging import phase_contrast, simulate_images_jit
from cryoensemble.io import ParticleDataset, read_particles, read_stack
from cryoensemble.io._star import particle_arrays
from cryoensemble.ndimage import lowpass
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.workflows.render import reference_map
from cryoensemble.workflows.simulate import (
    DEFAULT_STRUCTURE,
    SimulateConfig,
    draw_particles,
    load_config,
    regenerate_images,
    resolve_config,
    run,
)

SMALL = dict(n_particles=12, box_size=32, pixel_size=4.0, batch_size=8, selection="heavy")


def _imaging(atoms, cfg):
    from cryoensemble.imaging import ImagingConfig

    return ImagingConfig.for_atoms(
        atoms, cfg.box_size, cfg.pixel_size, pad_factor=cfg.pad_factor, apply_ctf=cfg.apply_ctf
    )


# ---------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"snr": -1}, "snr"),
        ({"n_particles": 0}, "n_particles"),
        ({"amplitude_contrast": 1.5}, "amplitude_contrast"),
        ({"unknown_option": 1}, "unknown_option"),
        ({"weights": [1, 2]}, "weights"),
        ({"defocus_min": 3e4}, "defocus_min"),
        ({"noise": "poisson"}, "dose"),
        ({"noise": "pink"}, "noise"),
        ({"selection": "sidechains"}, "selection"),
        ({"box_size": "big"}, "box_size"),
    ],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        load_config(**kwargs)
    assert field in str(err.value)


def test_config_file_yaml_and_toml_equal_to_keywords(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "n-particles: 7\nbox_size: 48\nsnr: 0.5\nstructures: [s.pdb]\nweights: [1]\n"
    )
    (tmp_path / "c.toml").write_text(
        'n_particles = 7\nbox_size = 48\nsnr = 0.5\nstructures = ["s.pdb"]\nweights = [1]\n'
    )
    a = load_config(tmp_path / "c.yaml")
    b = load_config(tmp_path / "c.toml")
    c = SimulateConfig(
        n_particles=7, box_size=48, snr=0.5, structures=[tmp_path / "s.pdb"], weights=[1]
    )
    assert a == b == c
    # command-line values override the file; None means "not given"
    assert load_config(tmp_path / "c.yaml", n_particles=9, snr=None).n_particles == 9


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("snr: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml.*cannot parse"):
        load_config(bad)
    bad.write_text("snr: -2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*snr"):
        load_config(bad)
    txt = tmp_path / "c.ini"
    txt.write_text("x")
    with pytest.raises(ConfigError, match="format"):
        load_config(txt)


# ---------------------------------------------------------------------------- sampling
def test_draw_particles_reproducible_and_in_range():
    cfg, optics, p = resolve_config(SimulateConfig(n_particles=4000, seed=3))
    _, _, q = resolve_config(SimulateConfig(n_particles=4000, seed=3))
    assert p.equals(q)
    assert cfg.box_size == 128 and cfg.pixel_size == 1.2
    assert optics["rlnVoltage"].item() == 300.0 and optics["rlnImageSize"].item() == 128
    mean = (p.rlnDefocusU + p.rlnDefocusV) / 2
    astig = p.rlnDefocusU - p.rlnDefocusV
    assert mean.between(10000, 20000).all() and astig.between(0, 500).all()
    assert p.rlnDefocusAngle.between(0, 180).all()
    assert p.rlnOriginXAngst.abs().max() <= 5 and p.rlnOriginYAngst.abs().max() <= 5
    # uniform rotations: cos(tilt) uniform in [-1, 1]
    cos_t = np.cos(np.radians(p.rlnAngleTilt))
    assert abs(cos_t.mean()) < 0.05 and abs((cos_t**2).mean() - 1 / 3) < 0.03
    assert p.rlnImageName.iloc[0] == "000001@particles_00000.mrcs"


def test_weights_choose_structures(data_dir):
    cfg = SimulateConfig(
        n_particles=2000,
        structures=[data_dir / "adk_open.pdb", data_dir / "adk_closed.pdb"],
        weights=[3, 1],
        box_size=32,
        pixel_size=4.0,
    )
    _, p = draw_particles(cfg)
    frac = (p.cryoensembleStructureIndex == 0).mean()
    assert abs(frac - 0.75) < 0.04
    assert set(p.cryoensembleStructureFile) == {"adk_open.pdb", "adk_closed.pdb"}


# ---------------------------------------------------------------------------- write loop
def test_round_trip_parameters_and_images_identical(tmp_path, data_dir):
    structures = [data_dir / "adk_open.pdb", data_dir / "adk_closed.pdb"]
    cfg = load_config(**SMALL, noise="none", structures=structures, stack_size=5, seed=4)
    summary = run(cfg, tmp_path, overwrite=True)
    assert summary.stacks == [
        "particles_00000.mrcs",
        "particles_00001.mrcs",
        "particles_00002.mrcs",
    ]
    assert summary.noise_sigma is None
    for name in [
        "particles.star",
        "ground_truth.csv",
        "config.yaml",
        "summary.json",
        "gallery.png",
    ]:
        assert (tmp_path / name).is_file()

    # parameters: what was drawn is what is read back, bit for bit
    resolved, _, drawn = resolve_config(cfg)
    table = read_particles(tmp_path / "particles.star")
    for col in drawn.columns:
        assert (table.particles[col].to_numpy() == drawn[col].to_numpy()).all(), col

    # images: bit-identical to the library's simulation at the read-back parameters
    ds = ParticleDataset(tmp_path / "particles.star")
    images = ds.read_images(np.arange(len(ds)))
    clean, noisy = regenerate_images(tmp_path)
    np.testing.assert_array_equal(images, noisy)
    np.testing.assert_array_equal(clean, noisy)
    # ... and equal (to float32 rounding) to a direct simulation, structure by structure
    from cryoensemble.structure import read_structure

    s_index = table.particles["cryoensembleStructureIndex"].to_numpy()
    for s, path in enumerate(structures):
        model = read_structure(path)
        atoms = gaussian_atoms(model, selection="heavy", center=model.center_of_mass())
        members = np.flatnonzero(s_index == s)
        arrays = particle_arrays(table, members)
        expected = np.asarray(
            phase_contrast(
                simulate_images_jit(
                    atoms,
                    arrays["rotations"],
                    arrays["shifts"],
                    arrays["ctf"],
                    _imaging(atoms, resolved),
                ),
                arrays["ctf"].voltage,
            )
        )
        np.testing.assert_allclose(
            images[members], expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max()
        )
    # the images are phase contrast: of order sigma_e * V A (1e-3 .. 1e-1), protein bright
    assert 1e-3 < images.max() < 1.0


def test_noise_is_reproducible_and_at_the_snr(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cfg = load_config(**SMALL, noise="gaussian", snr=0.5)
    sa = run(cfg, a, overwrite=True)
    run(cfg, b, overwrite=True)
    assert (a / "particles_00000.mrcs").read_bytes() == (b / "particles_00000.mrcs").read_bytes()
    # the noisy images are reproduced from what is on disk
    np.testing.assert_array_equal(regenerate_images(a)[1], read_stack(a / "particles_00000.mrcs"))
    clean_cfg = load_config(**SMALL, noise="none")
    c = tmp_path / "c"
    c.mkdir()
    run(clean_cfg, c, overwrite=True)
    noisy, clean = read_stack(a / "particles_00000.mrcs"), read_stack(c / "particles_00000.mrcs")
    noise = noisy - clean
    assert sa.noise_sigma is not None and sa.snr_mask_radius_px == 16
    assert abs(noise.std() / sa.noise_sigma - 1) < 0.05
    from cryoensemble.noise import signal_variance

    snr = float(np.mean(signal_variance(clean[:8], 16))) / sa.noise_sigma**2
    assert snr == pytest.approx(0.5, rel=1e-3)


def test_poisson_noise(tmp_path):
    cfg = load_config(**SMALL, noise="poisson", dose=50.0, gallery=False)
    run(cfg, tmp_path, overwrite=True)
    img = read_stack(tmp_path / "particles_00000.mrcs")
    d = 50.0 * 4.0**2
    # image = -(counts - D) / (2 D): values on a lattice of step 1 / (2 D)
    lattice = img * 2 * d
    assert np.allclose(lattice, np.round(lattice), atol=1e-2)
    assert not (tmp_path / "gallery.png").exists()


def test_error_inside_loop_removes_open_stack(tmp_path, monkeypatch):
    from cryoensemble.io import MrcStackWriter

    calls = {"n": 0}
    original = MrcStackWriter.append

    def failing(self, images):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return original(self, images)

    monkeypatch.setattr(MrcStackWriter, "append", failing)
    with pytest.raises(OSError, match="disk full"):
        run(load_config(**SMALL, noise="none"), tmp_path, overwrite=True)
    assert not list(tmp_path.glob("*.mrcs")) and not list(tmp_path.glob(".*tmp"))


def test_from_star_reproduces_the_parameters(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    run(load_config(**SMALL, noise="none"), a, overwrite=True)
    b = tmp_path / "b"
    b.mkdir()
    s = run(
        load_config(from_star=a / "particles.star", noise="none", selection="heavy"),
        b,
        overwrite=True,
    )
    assert s.box_size == 32 and s.pixel_size == 4.0 and s.n_particles == 12
    pa = read_particles(a / "particles.star").particles
    pb = read_particles(b / "particles.star").particles
    assert (pb.cryoensembleSourceImageName == pa.rlnImageName).all()
    np.testing.assert_allclose(
        read_stack(b / "particles_00000.mrcs"),
        read_stack(a / "particles_00000.mrcs"),
        rtol=1e-5,
        atol=1e-8,
    )
    with pytest.raises(ConfigError, match="box_size.*rlnImageSize"):
        resolve_config(load_config(from_star=a / "particles.star", box_size=64))
    with pytest.raises(ConfigError, match="pixel_size"):
        resolve_config(load_config(from_star=a / "particles.star", pixel_size=1.0))


# ---------------------------------------------------------------------------- maps and filters
def test_lowpass_filter_passes_low_and_removes_high_frequencies(x64):
    n, px = 64, 2.0
    x = np.arange(n)
    low = np.cos(2 * np.pi * 4 * x / n)[None, :] * np.ones((n, 1))  # 1/32 A^-1
    high = np.cos(2 * np.pi * 20 * x / n)[None, :] * np.ones((n, 1))  # 1/6.4 A^-1
    out = lowpass(jnp.asarray(low + high), px, 10.0)
    np.testing.assert_allclose(out, low, atol=1e-9)
    vol = np.random.default_rng(0).normal(size=(16, 16, 16))
    assert lowpass(jnp.asarray(vol), 1.0, 4.0, ndim=3).std() < vol.std()


def test_reference_map_centres_the_model(data_dir):
    from cryoensemble.structure import read_structure

    model = read_structure(DEFAULT_STRUCTURE)
    n, v = 40, 3.0
    vol = reference_map(model, n, v)
    assert vol.shape == (n, n, n) and vol.dtype == np.float32
    grid = np.arange(n) - n // 2
    w = vol.sum()
    centroid = [
        (vol.sum(axis=(1, 2)) * grid).sum() / w,
        (vol.sum(axis=(0, 2)) * grid).sum() / w,
        (vol.sum(axis=(0, 1)) * grid).sum() / w,
    ]
    assert np.abs(centroid).max() < 0.3  # voxels: the centre of mass is at N // 2
    shifted = reference_map(model, n, v, center=False)
    com = np.asarray(model.center_of_mass())[::-1] / v  # (z, y, x)
    centroid2 = [
        (shifted.sum(axis=(1, 2)) * grid).sum() / shifted.sum(),
        (shifted.sum(axis=(0, 2)) * grid).sum() / shifted.sum(),
        (shifted.sum(axis=(0, 1)) * grid).sum() / shifted.sum(),
    ]
    np.testing.assert_allclose(centroid2, com, atol=0.3)
    blurred = reference_map(model, n, v, b_factor=200.0)
    assert blurred.max() < vol.max()
    assert vol.sum() == pytest.approx(blurred.sum(), rel=1e-3)


def test_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "examples" / "simulate_config.yaml"
    cfg = load_config(example)
    assert cfg.weights == [0.7, 0.3] and all(p.is_file() for p in cfg.structures)
