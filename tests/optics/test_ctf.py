import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cryoensemble.ndimage import frequency_grid
from cryoensemble.optics import CTFParams, apply_ctf, ctf, padded_size


def _relion_ctf(k, phi, u, v, angle, kv, cs_mm, q0, phase=0.0, bfac=0.0, scale=1.0):
    """RELION's CTF written out independently with numpy in float64."""
    volts = kv * 1e3
    lam = 12.2643247 / np.sqrt(volts * (1 + 0.978466e-6 * volts))
    dz = u * np.cos(phi - np.deg2rad(angle)) ** 2 + v * np.sin(phi - np.deg2rad(angle)) ** 2
    gamma = (
        -np.pi * lam * dz * k**2
        + np.pi / 2 * cs_mm * 1e7 * lam**3 * k**4
        - np.deg2rad(phase)
        - np.arctan(q0 / np.sqrt(1 - q0**2))
    )
    return -np.sin(gamma) * np.exp(-bfac * k**2 / 4) * scale


@pytest.mark.parametrize(
    "k,phi",
    [(0.0, 0.0), (0.01, 0.3), (0.05, 1.0), (0.1, -2.0), (0.2, 2.5), (0.33, 0.7)],
)
def test_ctf_matches_relion_formula(k, phi, x64):
    p = dict(
        u=15000.0,
        v=13000.0,
        angle=30.0,
        kv=300.0,
        cs_mm=2.7,
        q0=0.1,
        phase=10.0,
        bfac=50.0,
        scale=0.8,
    )
    params = CTFParams(
        defocus_u=p["u"],
        defocus_v=p["v"],
        defocus_angle=p["angle"],
        voltage=p["kv"],
        spherical_aberration=p["cs_mm"],
        amplitude_contrast=p["q0"],
        phase_shift=p["phase"],
        b_factor=p["bfac"],
        scale=p["scale"],
        dtype=jnp.float64,
    )
    got = ctf(params, jnp.float64(k * np.cos(phi)), jnp.float64(k * np.sin(phi)))
    np.testing.assert_allclose(got, _relion_ctf(k, phi, **p), atol=1e-10)


def test_hand_computed_values():
    # At k = 0 the CTF is +Q0 (RELION's sign: bright protein at low resolution).
    params = CTFParams(defocus_u=10000.0, amplitude_contrast=0.07)
    assert float(ctf(params, jnp.float32(0), jnp.float32(0))) == pytest.approx(0.07, abs=1e-6)
    # Cs = 0, Q0 = 0: CTF = sin(pi lambda dz k^2); first zero at k = 1 / sqrt(lambda dz).
    # 300 kV: lambda = 0.0196875 A (hand value); dz = 20000 A -> k0 = 0.0503951 1/A.
    params = CTFParams(defocus_u=20000.0, spherical_aberration=0.0, amplitude_contrast=0.0)
    k0 = 1 / np.sqrt(0.0196875 * 20000.0)
    assert k0 == pytest.approx(0.0503951, rel=1e-5)
    assert abs(float(ctf(params, jnp.float32(k0), jnp.float32(0)))) < 1e-4
    assert float(ctf(params, jnp.float32(0.5 * k0), jnp.float32(0))) > 0.5
    assert float(ctf(params, jnp.float32(1.1 * k0), jnp.float32(0))) < 0


def test_astigmatism_rotates_with_the_angle():
    k = jnp.linspace(0.01, 0.3, 50)
    for angle in [0.0, 35.0, 120.0]:
        params = CTFParams(defocus_u=20000.0, defocus_v=12000.0, defocus_angle=angle)
        iso_u = CTFParams(defocus_u=20000.0)
        iso_v = CTFParams(defocus_u=12000.0)
        a = np.deg2rad(angle)
        along = ctf(params, k * np.cos(a), k * np.sin(a))
        across = ctf(params, k * np.cos(a + np.pi / 2), k * np.sin(a + np.pi / 2))
        np.testing.assert_allclose(along, ctf(iso_u, k, 0 * k), atol=1e-4)
        np.testing.assert_allclose(across, ctf(iso_v, k, 0 * k), atol=1e-4)


def test_frequency_grid_layout():
    kx, ky = frequency_grid(8, 2.0)
    assert kx.shape == (8, 5)
    np.testing.assert_allclose(kx[0], [0, 1 / 16, 2 / 16, 3 / 16, 4 / 16])
    np.testing.assert_allclose(ky[:, 0], np.fft.fftfreq(8, 2.0))


def test_apply_ctf_is_linear_and_padding_matters():
    img = jax.random.normal(jax.random.PRNGKey(0), (32, 32))
    params = CTFParams(defocus_u=8000.0)
    a = apply_ctf(img, params, 1.0)
    np.testing.assert_allclose(apply_ctf(2 * img, params, 1.0), 2 * a, rtol=1e-4, atol=1e-5)
    # Unit transfer function (scale to a constant): Q0 = 1 gives CTF = 1 everywhere.
    flat = CTFParams(defocus_u=0.0, spherical_aberration=0.0, amplitude_contrast=1.0 - 1e-7)
    np.testing.assert_allclose(apply_ctf(img, flat, 1.0), img, atol=1e-3)
    assert padded_size(128, 2.0) == 256 and padded_size(127, 1.0) == 128
    # Without padding the delocalised fringes wrap around: results differ.
    assert float(jnp.abs(apply_ctf(img, params, 1.0, pad_factor=1.0) - a).max()) > 1e-3
