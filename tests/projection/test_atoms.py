import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from cryoensemble.pose import euler_to_matrix
from cryoensemble.projection import default_half_width, project_atoms
from cryoensemble.scattering._potential import GaussianAtoms, gaussians_from_form_factors

CARBON_A = [0.0489, 0.2091, 0.7537, 1.1420, 0.3555]
CARBON_B = [0.1140, 1.0825, 5.4281, 17.8811, 51.1341]


def _one_gaussian(pos, amp, var, dtype=jnp.float32):
    return GaussianAtoms(
        positions=jnp.asarray([pos], dtype),
        amplitudes=jnp.asarray([[amp]], dtype),
        variances=jnp.asarray([[var]], dtype),
    )


def test_single_gaussian_integrates_to_its_amplitude(x64):
    atoms = _one_gaussian([1.3, -2.1, 0.7], 7.5, 0.8, jnp.float64)
    p = 1.0
    img = project_atoms(atoms, jnp.eye(3), jnp.zeros(2), 32, p, half_width=8)
    # Pixel averages times pixel area sum to the integral of the 2-D Gaussian: the amplitude.
    assert float(img.sum() * p**2) == pytest.approx(7.5, rel=1e-10)


def test_pixel_integration_matches_fine_quadrature(x64):
    var, p, pos = 0.09, 1.2, [0.37, -0.52, 3.0]  # a narrow Gaussian: sampling would be far off
    atoms = _one_gaussian(pos, 1.0, var, jnp.float64)
    img = np.asarray(project_atoms(atoms, jnp.eye(3), jnp.zeros(2), 16, p, half_width=6))
    # Independent: midpoint rule on a 200 x 200 sub-grid of every pixel.
    sub = 200
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    centres = (np.arange(16) - 8) * p
    xs = (centres[:, None] + offs[None, :] * p).ravel()
    g = lambda u, m: np.exp(-((u - m) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)
    gx = g(xs, pos[0]).reshape(16, sub).mean(axis=1)
    gy = g(xs, pos[1]).reshape(16, sub).mean(axis=1)
    np.testing.assert_allclose(img, np.outer(gy, gx), atol=2e-5 * img.max())


def test_fourier_transform_matches_analytic(x64):
    # A broad Gaussian (sigma = 2 px) has negligible aliasing; the DFT of pixel averages is the
    # continuous transform times the pixel's sinc, with a phase ramp for the atom position.
    var, p, n, pos = 4.0, 1.0, 64, np.array([2.3, -1.7, 0.0])
    atoms = _one_gaussian(pos, 3.0, var, jnp.float64)
    img = np.asarray(project_atoms(atoms, jnp.eye(3), jnp.zeros(2), n, p, half_width=16))
    ft = np.fft.fft2(np.fft.ifftshift(img)) * p**2
    k = np.fft.fftfreq(n, p)
    kx, ky = np.meshgrid(k, k)
    analytic = (
        3.0
        * np.exp(-2 * np.pi**2 * var * (kx**2 + ky**2))
        * np.sinc(kx * p)
        * np.sinc(ky * p)
        * np.exp(-2j * np.pi * (kx * pos[0] + ky * pos[1]))
    )
    np.testing.assert_allclose(ft, analytic, atol=1e-6)


def _brute_force(positions, amps, variances, n, p):
    """Pixel averages over the whole image, no truncation, numpy float64."""
    edges = (np.arange(n + 1) - n // 2 - 0.5) * p
    img = np.zeros((n, n))
    for r, a, v in zip(positions, amps, variances, strict=True):
        for ak, vk in zip(a, v, strict=True):
            s = np.sqrt(2 * vk)
            ix = 0.5 * np.diff(erf((edges - r[0]) / s))
            iy = 0.5 * np.diff(erf((edges - r[1]) / s))
            img += ak * np.outer(iy, ix) / p**2
    return img


def test_three_atoms_land_where_relion_puts_them(x64):
    # Three well-separated atoms; pose and origin in RELION's convention.
    pos = np.array([[10.0, 0.0, 0.0], [0.0, 15.0, 5.0], [-4.0, -6.0, 12.0]])
    atoms = gaussians_from_form_factors(
        pos, np.ones((3, 1)), np.full((3, 1), 8.0), dtype=jnp.float64
    )
    rot, tilt, psi, ox, oy, p, n = 30.0, 60.0, -45.0, 3.0, -4.8, 1.0, 64
    a = euler_to_matrix(jnp.float64(rot), jnp.float64(tilt), jnp.float64(psi))
    img = np.asarray(project_atoms(atoms, a, jnp.array([ox, oy]), n, p, half_width=6))
    rotated = pos @ np.asarray(a).T
    # RELION: the particle's centre appears at pixel N//2 - origin / pixel_size.
    expected = rotated[:, :2] - [ox, oy]
    ref = _brute_force(expected, np.asarray(atoms.amplitudes), np.asarray(atoms.variances), n, p)
    np.testing.assert_allclose(img, ref, atol=1e-9)
    for x, y in expected:
        i, j = int(round(y / p)) + n // 2, int(round(x / p)) + n // 2
        assert img[i, j] == img[i - 2 : i + 3, j - 2 : j + 3].max()


def test_default_truncation_error_below_1e3():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(300, 3)) * 8
    atoms = gaussians_from_form_factors(
        pos, np.tile(CARBON_A, (300, 1)), np.tile(CARBON_B, (300, 1))
    )
    for p in [0.5, 1.2, 2.0]:
        h = default_half_width(atoms, p)
        n = int(60 / p)
        r = euler_to_matrix(20.0, 50.0, 70.0)
        img = np.asarray(project_atoms(atoms, r, jnp.zeros(2), n, p, h), np.float64)
        ref = _brute_force(
            np.asarray(pos) @ np.asarray(r).T,
            np.asarray(atoms.amplitudes),
            np.asarray(atoms.variances),
            n,
            p,
        )
        assert np.linalg.norm(img - ref) / np.linalg.norm(ref) < 1e-3


def test_atoms_outside_the_box_are_dropped():
    atoms = _one_gaussian([500.0, -300.0, 0.0], 1.0, 0.5)
    img = project_atoms(atoms, jnp.eye(3), jnp.zeros(2), 32, 1.0, half_width=3)
    assert float(jnp.abs(img).max()) == 0.0
    # An atom on the border keeps the part of its mass that falls inside: pixel 0 starts at
    # x = -16.5 A, so the fraction is Phi(0.5 / sigma).
    atoms = _one_gaussian([-16.0, 0.0, 0.0], 1.0, 0.5)
    img = project_atoms(atoms, jnp.eye(3), jnp.zeros(2), 32, 1.0, half_width=4)
    assert float(img.sum()) == pytest.approx(0.5 * (1 + erf(0.5 / np.sqrt(2 * 0.5))), abs=1e-5)


def test_gradient_matches_finite_differences(x64):
    rng = np.random.default_rng(1)
    pos = rng.normal(size=(6, 3)) * 4
    atoms = gaussians_from_form_factors(
        pos, np.tile(CARBON_A, (6, 1)), np.tile(CARBON_B, (6, 1)) + 20, dtype=jnp.float64
    )
    r = euler_to_matrix(jnp.float64(10.0), jnp.float64(80.0), jnp.float64(200.0))
    target = jax.random.normal(jax.random.PRNGKey(0), (24, 24), jnp.float64)

    def loss(x):
        return jnp.sum(
            project_atoms(atoms.with_positions(x), r, jnp.array([0.3, -0.2]), 24, 1.0, 6) * target
        )

    x0 = jnp.asarray(pos)
    g = np.asarray(jax.grad(loss)(x0))
    eps = 1e-5
    fd = np.zeros_like(g)
    for i in range(6):
        for j in range(3):
            d = np.zeros_like(pos)
            d[i, j] = eps
            fd[i, j] = (loss(x0 + d) - loss(x0 - d)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_adjoint_matches_autodiff_of_a_direct_formula(x64):
    """The analytic adjoint agrees with plain autodiff of an independent, untruncated formula."""
    rng = np.random.default_rng(3)
    pos = jnp.asarray(rng.normal(size=(5, 3)) * 3)
    amp = jnp.asarray(rng.uniform(0.5, 2, size=(5, 2)))
    var = jnp.asarray(rng.uniform(0.6, 1.5, size=(5, 2)))
    r = euler_to_matrix(jnp.float64(40.0), jnp.float64(70.0), jnp.float64(-20.0))
    o = jnp.array([0.4, -0.7])
    n, p = 20, 1.0
    target = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float64)
    edges = (jnp.arange(n + 1) - n // 2 - 0.5) * p

    def direct(pos, amp, var, r, o):
        xy = pos @ r.T[:, :2] - o  # (a, 2)
        s = jnp.sqrt(2 * var)[..., None]  # (a, k, 1)
        ix = 0.5 * jnp.diff(jax.scipy.special.erf((edges - xy[:, None, 0:1]) / s), axis=-1)
        iy = 0.5 * jnp.diff(jax.scipy.special.erf((edges - xy[:, None, 1:2]) / s), axis=-1)
        return jnp.einsum("ak,aku,akv->uv", amp, iy, ix) / p**2

    def ours(pos, amp, var, r, o):
        return project_atoms(GaussianAtoms(pos, amp, var), r, o, n, p, half_width=9)

    args = (pos, amp, var, r, o)
    loss = lambda f: lambda *a: jnp.sum(f(*a) * target)
    np.testing.assert_allclose(ours(*args), direct(*args), atol=1e-12)
    g_ours = jax.grad(loss(ours), argnums=range(5))(*args)
    g_direct = jax.grad(loss(direct), argnums=range(5))(*args)
    for a, b in zip(g_ours, g_direct, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
