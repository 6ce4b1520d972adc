"""Voxel rendering of Gaussian atoms and Fourier-slice projection of maps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.errors import InputError
from cryoensemble.pose._euler import euler_to_matrix, random_rotations
from cryoensemble.projection import (
    default_half_width,
    prepare_map_projection,
    project_atoms,
    project_map_batch,
    project_map_batch_jit,
    project_map_jit,
    render_map,
)
from cryoensemble.scattering._potential import gaussians_from_form_factors

CARBON_A = np.array([0.0489, 0.2091, 0.7537, 1.1420, 0.3555])
CARBON_B = np.array([0.1140, 1.0825, 5.4281, 17.8811, 51.1341])


def carbons(positions, b_factor=0.0):
    positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    n = positions.shape[0]
    return gaussians_from_form_factors(
        positions,
        np.tile(CARBON_A, (n, 1)),
        np.tile(CARBON_B, (n, 1)),
        b_factors=np.full(n, b_factor),
    )


def random_carbons(n_atoms, extent, seed=0, b_factor=0.0):
    rng = np.random.default_rng(seed)
    return carbons(rng.uniform(-extent, extent, (n_atoms, 3)), b_factor)


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def relerr(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def low_pass(image, pixel_size, resolution):
    """Sharp low-pass of the last two axes to spatial frequencies <= 1 / resolution (1/A)."""
    n = image.shape[-1]
    k = np.fft.fftfreq(n, pixel_size)
    keep = (k[:, None] ** 2 + k[None, :] ** 2) <= 1.0 / resolution**2
    return np.fft.ifft2(np.fft.fft2(image) * keep).real


def exact_slice_projection(volume, rotation, origin, n, m, voxel_size):
    """Reference: the 3-D DFT of the map evaluated exactly (direct sum) on the rotated slice."""
    size = volume.shape[0]
    c = np.arange(size) - size // 2
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    r = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)
    kx, ky = np.meshgrid(np.fft.rfftfreq(m), np.fft.fftfreq(m))
    k2 = np.stack([kx.ravel(), ky.ravel()], axis=1)
    k3 = k2 @ np.asarray(rotation, np.float64)[:2]
    inside = np.all(np.abs(k3) <= 0.5, axis=1)
    ft = np.exp(-2j * np.pi * k3 @ r.T) @ np.asarray(volume, np.float64).ravel()
    ft = ft * inside * np.exp(2j * np.pi * k2 @ np.asarray(origin, np.float64) / voxel_size)
    image = np.fft.fftshift(np.fft.irfft2(ft.reshape(kx.shape), s=(m, m)))
    o = m // 2 - n // 2
    return image[o : o + n, o : o + n] * voxel_size


# ------------------------------------------------------------------------------------ rendering


@pytest.mark.parametrize("n", [48, 33])
def test_render_sum_along_z_equals_project_atoms(n):
    v = 1.1
    atoms = random_carbons(200, 12.0, seed=1)
    # a generous window (6 sigma) so that the truncation along z (absent from the projection) is
    # negligible; the windows along x and y are the same in both
    h = int(np.ceil(6.0 * np.sqrt(float(atoms.variances.max())) / v))
    volume = render_map(atoms, n, v, half_width=h)
    assert volume.shape == (n, n, n) and volume.dtype == jnp.float32
    image = project_atoms(atoms, jnp.eye(3), jnp.zeros(2), n, v, h)
    np.testing.assert_allclose(
        np.asarray(volume.sum(0)) * v, image, rtol=0, atol=2e-5 * float(image.max())
    )


def test_render_integral_and_centre_convention():
    v = 1.0
    atoms = carbons([[3.0, -2.0, 5.0]], b_factor=20.0)
    volume = np.asarray(render_map(atoms, 32, v, half_width=8))
    total = float(np.sum(atoms.amplitudes))
    np.testing.assert_allclose(volume.sum() * v**3, total, rtol=1e-4)
    # centroid (x, y, z) of the voxel values = the atom position, with voxel N // 2 at the centre
    idx = np.indices(volume.shape).reshape(3, -1) - 16
    centroid = (idx * volume.ravel()).sum(1) / volume.sum() * v
    np.testing.assert_allclose(centroid[::-1], [3.0, -2.0, 5.0], atol=1e-3)


def test_render_chunking_does_not_change_the_map():
    atoms = random_carbons(37, 8.0, seed=2)
    a = render_map(atoms, 24, 1.3)
    b = render_map(atoms, 24, 1.3, chunk_size=5)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(a.max()))


def test_render_rejects_bad_parameters():
    atoms = random_carbons(3, 2.0)
    with pytest.raises(InputError):
        render_map(atoms, 16, 0.0)
    with pytest.raises(InputError):
        render_map(atoms, 0, 1.0)


# ----------------------------------------------------------------------------------- projection


@pytest.fixture(scope="module")
def small_map():
    v = 1.2
    atoms = random_carbons(150, 10.0, seed=3)
    return atoms, np.asarray(render_map(atoms, 40, v)), v


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_identity_projection_is_the_sum_along_z(small_map, interpolation):
    _, volume, v = small_map
    target = volume.sum(0) * v
    # without gridding correction the identity slice falls on grid points: exact
    p = prepare_map_projection(volume, v, 2.0, interpolation, gridding_correction=False)
    image = project_map_jit(p, jnp.eye(3), jnp.zeros(2), 40)
    assert image.shape == (40, 40) and image.dtype == jnp.float32
    assert relerr(image, target) < 1e-5
    p = prepare_map_projection(volume, v, 2.0, interpolation)
    image = project_map_jit(p, jnp.eye(3), jnp.zeros(2), 40)
    assert corr(image, target) > (0.999 if interpolation == "cubic" else 0.998)


@pytest.mark.parametrize(
    ("interpolation", "pad_factor", "tolerance"),
    [("linear", 2.0, 0.02), ("cubic", 1.0, 0.04), ("cubic", 2.0, 0.005)],
)
def test_interpolation_matches_exact_dft_slice(interpolation, pad_factor, tolerance):
    v, n = 1.2, 24
    volume = np.asarray(render_map(random_carbons(60, 6.0, seed=4), n, v))
    rotation = euler_to_matrix(30.0, 60.0, -20.0)
    origin = np.array([1.3, -2.1])
    m = int(round(n * pad_factor))
    ref = exact_slice_projection(volume, rotation, origin, n, m, v)
    p = prepare_map_projection(volume, v, pad_factor, interpolation)
    image = project_map_jit(p, rotation, jnp.asarray(origin, jnp.float32), n)
    assert relerr(image, ref) < tolerance


def test_gridding_correction_improves_linear_interpolation():
    v, n = 1.2, 24
    volume = np.asarray(render_map(random_carbons(60, 6.0, seed=4), n, v))
    rotation = euler_to_matrix(-70.0, 35.0, 110.0)
    ref = exact_slice_projection(volume, rotation, np.zeros(2), n, 2 * n, v)
    errs = [
        relerr(
            project_map_jit(
                prepare_map_projection(volume, v, 2.0, "linear", gc), rotation, jnp.zeros(2), n
            ),
            ref,
        )
        for gc in (False, True)
    ]
    assert errs[1] < 0.5 * errs[0]


@pytest.mark.parametrize(
    ("angles", "origin"),
    [((0.0, 0.0, 0.0), (2.4, -3.6)), ((30.0, 60.0, -20.0), (0.0, 0.0)), ((-120.0, 100.0, 45.0), (-4.8, 1.2)),
     ((75.0, 150.0, 170.0), (3.0, 3.0))],
)  # fmt: skip
@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_single_atom_lands_where_project_atoms_puts_it(angles, origin, interpolation):
    v, n = 1.2, 40
    atoms = carbons([[6.0, -3.6, 4.8]], b_factor=30.0)
    volume = render_map(atoms, n, v)
    rotation = euler_to_matrix(*angles)
    origin = jnp.asarray(origin, jnp.float32)
    image = np.asarray(
        project_map_jit(prepare_map_projection(volume, v, 2.0, interpolation), rotation, origin, n)
    )
    ref = np.asarray(project_atoms(atoms, rotation, origin, n, v, default_half_width(atoms, v)))
    assert np.unravel_index(image.argmax(), image.shape) == np.unravel_index(
        ref.argmax(), ref.shape
    )
    yy, xx = np.indices(image.shape)
    for img in (image, ref):
        img = img * (img > 0.05 * img.max())
        centroid = np.array([(xx * img).sum(), (yy * img).sum()]) / img.sum()
        expected = (np.asarray(rotation) @ np.array([6.0, -3.6, 4.8]))[:2] - np.asarray(origin)
        np.testing.assert_allclose((centroid - n // 2) * v, expected, atol=0.05)
    assert corr(image, ref) > 0.99


def test_batch_matches_single_projections(small_map):
    _, volume, v = small_map
    p = prepare_map_projection(volume, v, 1.5, "linear")
    rotations = random_rotations(jax.random.key(0), 5)
    origins = jax.random.uniform(jax.random.key(1), (5, 2), minval=-3, maxval=3)
    batch = project_map_batch_jit(p, rotations, origins, 36, chunk_size=2)
    assert batch.shape == (5, 36, 36)
    for i in range(5):
        single = project_map_jit(p, rotations[i], origins[i], 36)
        np.testing.assert_allclose(
            batch[i], single, rtol=0, atol=1e-4 * float(jnp.abs(single).max())
        )


def test_image_larger_than_padded_map(small_map):
    _, volume, v = small_map
    p = prepare_map_projection(volume, v, 1.0, "linear", gridding_correction=False)
    image = project_map_jit(p, jnp.eye(3), jnp.zeros(2), 50)
    o = 25 - 20
    np.testing.assert_allclose(
        image[o : o + 40, o : o + 40], volume.sum(0) * v, atol=1e-4 * float(image.max())
    )
    assert float(jnp.abs(image[:o]).max()) < 1e-4 * float(image.max())


def test_prepare_rejects_bad_input(small_map):
    _, volume, v = small_map
    with pytest.raises(InputError):
        prepare_map_projection(volume, v, interpolation="nearest")
    with pytest.raises(InputError):
        prepare_map_projection(volume[:, :, :-1], v)
    with pytest.raises(InputError):
        prepare_map_projection(volume, v, pad_factor=0.5)
    with pytest.raises(InputError):
        prepare_map_projection(volume, -1.0)


# --------------------------------------------------------------------------- adenylate kinase


@pytest.fixture(scope="module")
def adk():
    from pathlib import Path

    import cryoensemble
    from cryoensemble.scattering._potential import gaussian_atoms
    from cryoensemble.structure._io import read_structure

    model = read_structure(Path(cryoensemble.__file__).parent / "data" / "adk_closed.pdb")
    atoms = gaussian_atoms(model, center=model.center_of_mass())
    n, v = 128, 1.2
    rotations = random_rotations(jax.random.key(42), 5)
    origins = jax.random.uniform(jax.random.key(7), (5, 2), minval=-3.0, maxval=3.0)
    h = default_half_width(atoms, v)
    refs = [
        low_pass(np.asarray(project_atoms(atoms, r, o, n, v, h)), v, 4.0)
        for r, o in zip(rotations, origins, strict=True)
    ]
    return render_map(atoms, n, v), rotations, origins, refs, n, v


@pytest.mark.parametrize(
    ("interpolation", "pad_factor"),
    [("linear", 1.0), ("linear", 2.0), ("cubic", 2.0)],
)
def test_adk_atom_and_map_projections_agree(adk, interpolation, pad_factor):
    volume, rotations, origins, refs, n, v = adk
    p = prepare_map_projection(volume, v, pad_factor, interpolation)
    images = project_map_batch(p, rotations, origins, n)
    for image, ref in zip(np.asarray(images), refs, strict=True):
        assert corr(low_pass(image, v, 4.0), ref) >= 0.99
