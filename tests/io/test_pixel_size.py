"""Reading a particle stack at a larger pixel size than it was stored with (Fourier cropping on
the fly), and masks too large for the images."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from cryoensemble.data import bundled
from cryoensemble.errors import InputError
from cryoensemble.imaging import ArrayParticles, ImagingConfig, crop_geometry, simulate_images_jit
from cryoensemble.inference import likelihood_matrix
from cryoensemble.io import MrcStackWriter, ParticleDataset, format_image_name, write_particles
from cryoensemble.ndimage import fourier_crop
from cryoensemble.optics import CTFParams
from cryoensemble.pose import euler_to_matrix
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import load_structures, read_structure
from cryoensemble.workflows.reweight import reweight

N_PART, BOX, PX = 24, 64, 1.2  # stored stack; read at 2.4 A, box 32
# A B-factor on the models, as on real data: without one, C-alpha atoms imaged directly at
# 2.4 A alias (the direct coarse simulation, not the crop, is then the inaccurate image).
B_FACTOR = 50.0


@pytest.fixture(scope="module")
def stack64(tmp_path_factory):
    """24 noise-free particles of ADK open (even rows) / closed (odd rows), 64 px at 1.2 A, in a
    STAR file + MRC stack; returns (star, atoms, images, truth)."""
    tmp = tmp_path_factory.mktemp("px")
    rng = np.random.default_rng(7)
    models = [read_structure(bundled(f"adk_{k}.pdb")) for k in ("open", "closed")]
    centre = models[0].center_of_mass()
    atoms = [
        gaussian_atoms(m, selection="calpha", center=centre, b_factor=B_FACTOR) for m in models
    ]
    particles = pd.DataFrame(
        {
            "rlnImageName": [format_image_name(i + 1, "s.mrcs") for i in range(N_PART)],
            "rlnAngleRot": rng.uniform(-180, 180, N_PART),
            "rlnAngleTilt": rng.uniform(0, 180, N_PART),
            "rlnAnglePsi": rng.uniform(-180, 180, N_PART),
            "rlnOriginXAngst": rng.normal(0, 2, N_PART),
            "rlnOriginYAngst": rng.normal(0, 2, N_PART),
            "rlnDefocusU": rng.uniform(8e3, 2e4, N_PART),
            "rlnDefocusV": rng.uniform(8e3, 2e4, N_PART),
            "rlnDefocusAngle": rng.uniform(0, 90, N_PART),
        }
    )
    col = lambda c: jnp.asarray(particles[c].to_numpy(np.float32))
    rot = euler_to_matrix(col("rlnAngleRot"), col("rlnAngleTilt"), col("rlnAnglePsi"))
    shifts = jnp.stack([col("rlnOriginXAngst"), col("rlnOriginYAngst")], -1)
    ctf = CTFParams(
        defocus_u=col("rlnDefocusU"),
        defocus_v=col("rlnDefocusV"),
        defocus_angle=col("rlnDefocusAngle"),
        voltage=300.0,
        spherical_aberration=2.7,
        amplitude_contrast=0.1,
    )
    config = ImagingConfig.for_atoms(atoms[0], BOX, PX)
    both = [np.asarray(simulate_images_jit(a, rot, shifts, ctf, config)) for a in atoms]
    truth = np.arange(N_PART) % 2
    images = np.where(truth[:, None, None] == 0, both[0], both[1]).astype(np.float32)
    with MrcStackWriter(tmp / "s.mrcs", BOX, PX) as w:
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
    star = write_particles(tmp / "p.star", (optics, particles))
    return star, atoms, images, truth


def test_cropped_images_equal_fourier_crop(stack64):
    star, _, images, _ = stack64
    native = ParticleDataset(star)
    ds = ParticleDataset(star, pixel_size=2.4)
    assert (ds.box_size, ds.pixel_size) == (32, pytest.approx(2.4, rel=1e-12))
    assert (ds.native_box_size, ds.native_pixel_size) == (BOX, pytest.approx(PX))
    idx = [5, 0, 17, 17, 3]
    got = ds.batch(idx)
    want = np.asarray(fourier_crop(jnp.asarray(images[idx]), 32))
    assert got.images.shape == (5, 32, 32) and got.images.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got.images), want, atol=1e-6 * np.abs(want).max())
    np.testing.assert_array_equal(ds.read_images(idx), np.asarray(got.images))
    # poses, shifts (Angstrom) and CTF are those of the file, unchanged by the crop
    ref = native.batch(idx)
    for a, b in ((got.rotations, ref.rotations), (got.shifts, ref.shifts)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(got.ctf.defocus_u), np.asarray(ref.ctf.defocus_u))
    batches = list(ds.iter_batches(10, pad_to=10))
    assert [b.images.shape for b in batches] == [(10, 32, 32)] * 3
    assert sum(b.n_valid for b in batches) == N_PART
    assert "cropped from box=64" in repr(ds)


def test_box_size_and_pixel_size_select_the_same_crop(stack64):
    star, _, _, _ = stack64
    by_box = ParticleDataset(star, box_size=32)
    assert by_box.pixel_size == pytest.approx(2.4)
    both = ParticleDataset(star, pixel_size=2.4, box_size=32)
    np.testing.assert_array_equal(by_box.read_images([1, 2]), both.read_images([1, 2]))
    assert ParticleDataset(star, box_size=48).pixel_size == pytest.approx(1.6)


def test_native_pixel_size_reads_the_stored_images(stack64):
    star, _, images, _ = stack64
    for px in (PX, float(np.float32(PX))):  # a float32 round trip of the pixel size still matches
        ds = ParticleDataset(star, pixel_size=px)
        assert ds.box_size == BOX
        np.testing.assert_array_equal(ds.read_images([0, 3]), images[[0, 3]])  # bit for bit


def test_likelihood_matrix_matches_direct_simulation(stack64):
    """L of the 1.2 A stack read at 2.4 A ~ L of images simulated directly at 2.4 A, box 32."""
    star, atoms, _, truth = stack64
    ds = ParticleDataset(star, pixel_size=2.4)
    config = ImagingConfig.for_atoms(atoms[0], ds.box_size, ds.pixel_size)
    b = ds.batch(np.arange(N_PART))
    both = [simulate_images_jit(a, b.rotations, b.shifts, b.ctf, config) for a in atoms]
    direct = jnp.where(jnp.asarray(truth)[:, None, None] == 0, both[0], both[1])
    direct_ds = ArrayParticles(direct, b.ctf, 2.4, b.rotations, b.shifts)
    sigma = float(jnp.std(direct))  # noise-free images: the white likelihood at a fixed sigma
    L_crop = likelihood_matrix(ds, atoms, config, "white", sigma=sigma, batch_size=8)
    L_direct = likelihood_matrix(direct_ds, atoms, config, "white", sigma=sigma, batch_size=8)
    assert np.corrcoef(L_crop.ravel(), L_direct.ravel())[0, 1] > 0.99
    d_crop, d_direct = L_crop[:, 0] - L_crop[:, 1], L_direct[:, 0] - L_direct[:, 1]
    assert np.corrcoef(d_crop, d_direct)[0, 1] > 0.99
    assert np.array_equal(L_crop.argmax(1), truth) and np.array_equal(L_direct.argmax(1), truth)


# -------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pixel_size": 1.0}, r"p.star: pixel_size = 1 A is smaller.*only downsampling"),
        ({"box_size": 80}, r"p.star: box_size = 80 is larger.*64-pixel.*only downsampling"),
        ({"box_size": 31}, r"p.star: box_size must be an even number"),
        ({"pixel_size": 1.9}, r"p.star: pixel_size = 1.9 A is not reachable.*box_size = 40"),
        ({"pixel_size": 2.4, "box_size": 30}, r"p.star: pixel_size = 2.4 A and box_size = 30"),
        ({"pixel_size": -2.0}, r"p.star: pixel_size.*> 0"),
    ],
)
def test_impossible_crops_are_refused(stack64, kwargs, match):
    star, _, _, _ = stack64
    with pytest.raises(InputError, match=match):
        ParticleDataset(star, **kwargs)


def test_crop_geometry_keeps_the_field_of_view():
    assert crop_geometry(256, 1.06) == (256, 1.06)
    box, px = crop_geometry(256, 1.06, box_size=128)
    assert box == 128 and px == pytest.approx(2.12) and box * px == pytest.approx(256 * 1.06)
    assert crop_geometry(200, 1.0, pixel_size=2.5) == (80, 2.5)
    assert crop_geometry(101, 1.3, pixel_size=1.3) == (101, 1.3)  # odd native box, no crop


def test_mask_larger_than_the_box_is_refused(stack64):
    star, _, _, _ = stack64
    ds = ParticleDataset(star, pixel_size=2.4)  # field of view 76.8 A: radius at most 38.4 A
    assert ds.mask_radius_px(38.4) == pytest.approx(16.0)
    with pytest.raises(InputError, match=r"p.star: mask_radius = 40 A.*too small for the mask"):
        ds.mask_radius_px(40.0)
    with pytest.raises(InputError, match=r"p.star: mask_radius = 4 A is under 2 pixels"):
        ds.mask_radius_px(4.0)
    small = ArrayParticles(np.zeros((2, 16, 16)), CTFParams(defocus_u=1e4), 1.0)
    with pytest.raises(InputError, match=r"mask_radius = 9 A \(9.0 pixels\) is larger"):
        small.mask_radius_px(9.0)


def test_reweight_refuses_a_mask_larger_than_the_particles(stack64):
    star, _, _, _ = stack64
    models = load_structures([bundled("adk_open.pdb"), bundled("adk_closed.pdb")])
    with pytest.raises(InputError, match=r"p.star: mask_radius = 50 A.*larger than half the box"):
        reweight(star, models, selection="calpha", mask_radius=50.0)
