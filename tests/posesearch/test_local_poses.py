"""The likelihood marginalised over a local pose neighbourhood: zero width against the known-pose
likelihood, shifts and rotations against brute-force sums over explicitly re-projected
templates, robustness to pose errors, and the estimation of the pose-error width."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from scipy.special import logsumexp

from cryoensemble.data import bundled
from cryoensemble.errors import InputError
from cryoensemble.imaging import ArrayParticles, ImagingConfig, simulate_images_jit
from cryoensemble.inference import fit_weights_em, log_likelihood_marginal
from cryoensemble.noise import add_gaussian_noise, snr_noise_sigma
from cryoensemble.optics import CTFParams
from cryoensemble.pose import euler_to_matrix, random_euler_angles
from cryoensemble.posesearch import (
    LocalPoseConfig,
    estimate_pose_prior,
    local_marginal_log_likelihood_matrix,
    prepare_reference,
    rotation_quadrature,
)
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure

BOX, PX = 32, 4.8


def _atoms(name: str):
    m = read_structure(bundled(f"adk_{name}.pdb"))
    return gaussian_atoms(m, selection="all", center=m.center_of_mass())


@pytest.fixture(scope="module")
def adk():
    return _atoms("open"), _atoms("closed")


def _ctf(n, seed=0):
    rng = np.random.default_rng(seed)
    du = rng.uniform(8000, 20000, n).astype(np.float32)
    return CTFParams(
        defocus_u=du,
        defocus_v=du + rng.uniform(-300, 300, n).astype(np.float32),
        defocus_angle=rng.uniform(0, 180, n).astype(np.float32),
    )


def _poses(n, seed):
    rot, tilt, psi = random_euler_angles(jax.random.key(seed), n)
    rng = np.random.default_rng(seed)
    return np.asarray(euler_to_matrix(rot, tilt, psi)), rng.normal(0, 2.0, (n, 2)).astype(
        np.float32
    )


def _noisy(potential, rots, shifts, ctf, box, px, snr, seed, pad_factor=2.0):
    config = ImagingConfig(box_size=box, pixel_size=px, pad_factor=pad_factor)
    if not hasattr(potential, "volume_ft"):
        config = ImagingConfig.for_atoms(potential, box, px, pad_factor=pad_factor)
    clean = simulate_images_jit(potential, jnp.asarray(rots), jnp.asarray(shifts), ctf, config)
    sigma = snr_noise_sigma(clean, snr)
    return np.asarray(add_gaussian_noise(jax.random.key(seed + 11), clean, sigma))


def _repeat_ctf(ctf, i, m):
    """Particle i's CTF, m times."""
    return jax.tree.map(lambda a: np.full(m, np.ravel(a)[min(i, np.size(a) - 1)]), ctf)


def _known(proj, images, rots, shifts, ctf, pad_factor=2.0):
    """The known-pose marginal likelihood, by the imaging pipeline on the same map."""
    config = ImagingConfig(box_size=images.shape[-1], pixel_size=PX, pad_factor=pad_factor)
    x = simulate_images_jit(proj, jnp.asarray(rots), jnp.asarray(shifts), ctf, config)
    return np.array([float(log_likelihood_marginal(a, b)) for a, b in zip(x, images, strict=True)])


def _perturb(rots, shifts, sigma_deg, sigma_a, seed):
    """Poses with isotropic errors: exp([w]_x) A, w ~ N(0, sigma^2 I) (degrees); shifts + N."""
    rng = np.random.default_rng(seed)
    w = np.deg2rad(rng.normal(0, sigma_deg, (len(rots), 3)))
    out = np.einsum("nij,njk->nik", Rotation.from_rotvec(w).as_matrix(), rots)
    return out.astype(np.float32), (shifts + rng.normal(0, sigma_a, shifts.shape)).astype(
        np.float32
    )


def test_zero_width_equals_known_pose_likelihood(adk):
    n = 6
    rots, shifts = _poses(n, 0)
    ctf = _ctf(n)
    proj = prepare_reference(adk[0], BOX, PX)
    images = _noisy(proj, rots, shifts, ctf, BOX, PX, 0.1, 0)
    ds = ArrayParticles(images, ctf, PX, rots, shifts)
    L = local_marginal_log_likelihood_matrix(ds, [proj], LocalPoseConfig(0.0, 0.0))
    ref = _known(proj, images, rots, shifts, ctf)
    np.testing.assert_allclose(L[:, 0], ref, rtol=2e-5, atol=0.05)


def test_zero_width_whitened_equals_known_pose_colored_likelihood(adk):
    """With a noise PSD (pad factor 1): the marginal likelihood of the whitened images."""
    n = 4
    rots, shifts = _poses(n, 5)
    ctf = _ctf(n, 5)
    proj = prepare_reference(adk[0], BOX, PX)
    images = _noisy(proj, rots, shifts, ctf, BOX, PX, 0.1, 5, pad_factor=1.0)
    ky = np.fft.fftfreq(BOX)[:, None]
    kx = np.fft.rfftfreq(BOX)[None, :]
    psd = (1.0 + 4.0 * np.exp(-(kx**2 + ky**2) / 0.02)).astype(np.float32)
    ds = ArrayParticles(images, ctf, PX, rots, shifts)
    cfg = LocalPoseConfig(0.0, 0.0, pad_factor=1.0)
    L = local_marginal_log_likelihood_matrix(ds, proj, cfg, psd=psd)
    config = ImagingConfig(box_size=BOX, pixel_size=PX, pad_factor=1.0)
    x = simulate_images_jit(proj, jnp.asarray(rots), jnp.asarray(shifts), ctf, config)
    white = lambda a: np.fft.irfft2(np.fft.rfft2(a) / np.sqrt(psd), s=(BOX, BOX))
    ref = [
        float(log_likelihood_marginal(white(a), white(b)))
        for a, b in zip(np.asarray(x), images, strict=True)
    ]
    np.testing.assert_allclose(L[:, 0], ref, rtol=2e-5, atol=0.05)
    assert np.all(np.abs(L[:, 0] - _known(proj, images, rots, shifts, ctf, 1.0)) > 1.0)


def test_shift_marginal_equals_brute_force(adk):
    """Sub-pixel shift grid by FFT correlation and phase ramps == explicitly shifted templates."""
    n, sigma_a = 4, 0.5 * PX
    rots, shifts = _poses(n, 1)
    ctf = _ctf(n, 1)
    proj = prepare_reference(adk[0], BOX, PX)
    images = _noisy(proj, rots, shifts, ctf, BOX, PX, 0.5, 1, pad_factor=1.0)
    cfg = LocalPoseConfig(0.0, sigma_a, extent=2.0, shift_step=0.5, pad_factor=1.0)
    L = local_marginal_log_likelihood_matrix(
        ArrayParticles(images, ctf, PX, rots, shifts), proj, cfg
    )
    # independent quadrature: translations t (pixels) on a half-pixel grid in the disc
    g = np.arange(-8, 9) / 2.0
    t = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    t = t[np.sum(t**2, 1) <= (2.0 * sigma_a / PX) ** 2 + 1e-9]
    logw = -np.sum(t**2, 1) / (2 * (sigma_a / PX) ** 2)
    logw -= logsumexp(logw)
    for i in range(n):
        s = shifts[i] - t * PX  # a translation t is rlnOrigin = -t * pixel
        c = _repeat_ctf(ctf, i, len(t))
        lt = _known(
            proj,
            np.repeat(images[i : i + 1], len(t), 0),
            np.repeat(rots[i : i + 1], len(t), 0),
            s,
            c,
            1.0,
        )
        np.testing.assert_allclose(L[i, 0], logsumexp(lt + logw), rtol=1e-5)


def test_rotation_marginal_equals_brute_force(adk):
    n, sigma = 3, 4.0
    rots, shifts = _poses(n, 2)
    ctf = _ctf(n, 2)
    proj = prepare_reference(adk[0], BOX, PX)
    images = _noisy(proj, rots, shifts, ctf, BOX, PX, 0.5, 2)
    cfg = LocalPoseConfig(sigma, 0.0, extent=2.0, rotation_steps=2)
    L = local_marginal_log_likelihood_matrix(
        ArrayParticles(images, ctf, PX, rots, shifts), proj, cfg
    )
    # independent quadrature: the lattice points of the ball, spacing sigma, Gaussian weights
    i = np.arange(-2, 3)
    w = np.stack(np.meshgrid(i, i, i), -1).reshape(-1, 3).astype(np.float64)
    w = w[np.sum(w**2, 1) <= 4.0] * sigma
    logw = -np.sum(w**2, 1) / (2 * sigma**2)
    logw -= logsumexp(logw)
    assert len(w) == cfg.n_rotations == 33
    np.testing.assert_allclose(np.exp(rotation_quadrature(sigma, 2.0, 2)[1]).sum(), 1.0, rtol=1e-6)
    perturb = Rotation.from_rotvec(np.deg2rad(w)).as_matrix()
    for k in range(n):
        r = np.einsum("qij,jk->qik", perturb, rots[k]).astype(np.float32)
        c = _repeat_ctf(ctf, k, len(w))
        lq = _known(
            proj,
            np.repeat(images[k : k + 1], len(w), 0),
            r,
            np.repeat(shifts[k : k + 1], len(w), 0),
            c,
        )
        np.testing.assert_allclose(L[k, 0], logsumexp(lq + logw), rtol=1e-5)


def test_small_width_close_to_known_pose(adk):
    n = 8
    rots, shifts = _poses(n, 3)
    ctf = _ctf(n, 3)
    proj = prepare_reference(adk[0], BOX, PX)
    images = _noisy(proj, rots, shifts, ctf, BOX, PX, 0.05, 3)
    ds = ArrayParticles(images, ctf, PX, rots, shifts)
    L = local_marginal_log_likelihood_matrix(ds, proj, LocalPoseConfig(0.5, 0.1 * PX))
    ref = _known(proj, images, rots, shifts, ctf)
    assert np.max(np.abs(L[:, 0] - ref)) < 0.5, L[:, 0] - ref


def _mixture(adk, n, seed, snr, box=BOX, px=PX):
    """Images from the atoms of open (70 %) / closed at true poses; labels, true poses, CTF."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) >= 0.7).astype(int)
    rots, shifts = _poses(n, seed)
    ctf = _ctf(n, seed)
    config = ImagingConfig.for_atoms(adk[0], box, px)
    both = [
        np.asarray(simulate_images_jit(a, jnp.asarray(rots), jnp.asarray(shifts), ctf, config))
        for a in adk
    ]
    images = np.where(labels[:, None, None] == 0, both[0], both[1])
    sigma = snr_noise_sigma(images, snr)
    noisy = np.asarray(add_gaussian_noise(jax.random.key(seed), images, sigma))
    return noisy, labels, rots, shifts, ctf


@pytest.mark.slow
def test_perturbed_poses_local_marginal_beats_known_pose(adk):
    """Poses off by 3 degrees and 1 A: the local marginal scores the true structure higher and
    gives two-structure weights closer to the sample fractions (several seeds)."""
    projs = [prepare_reference(a, BOX, PX) for a in adk]
    zero, local = LocalPoseConfig(0.0, 0.0), LocalPoseConfig(3.0, 1.0)
    err_known, err_local = [], []
    for seed in range(3):
        images, labels, rots, shifts, ctf = _mixture(adk, 200, seed, 0.05)
        r, s = _perturb(rots, shifts, 3.0, 1.0, seed + 100)
        ds = ArrayParticles(images, ctf, PX, r, s)
        L0 = local_marginal_log_likelihood_matrix(ds, projs, zero)
        L1 = local_marginal_log_likelihood_matrix(ds, projs, local)
        rows = np.arange(len(labels))
        assert L1[rows, labels].sum() > L0[rows, labels].sum()
        truth = np.bincount(labels, minlength=2) / len(labels)
        err_known.append(abs(fit_weights_em(L0)[0][0] - truth[0]))
        err_local.append(abs(fit_weights_em(L1)[0][0] - truth[0]))
    assert np.mean(err_local) < np.mean(err_known), (err_local, err_known)


@pytest.mark.slow
def test_estimated_pose_error_width_within_30_percent(adk):
    box, px, sigma_rot, sigma_shift = 48, 1.5, 3.0, 1.0
    n = 300
    rots, shifts = _poses(n, 7)
    ctf = _ctf(n, 7)
    images = _noisy(adk[0], rots, shifts, ctf, box, px, 0.1, 7)
    r, s = _perturb(rots, shifts, sigma_rot, sigma_shift, 8)
    cfg = LocalPoseConfig()  # pad factor 2, as the images (pad 1 overestimates by ~20 %)
    est = estimate_pose_prior(
        ArrayParticles(images, ctf, px, r, s),
        adk[0],
        cfg,
        rotation_grid=(0.0, 1.5, 2.25, 3.0, 4.0, 5.0),
        shift_grid=(0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
    )
    assert abs(est.rotation_sigma - sigma_rot) < 0.3 * sigma_rot, est.to_json()
    assert abs(est.shift_sigma - sigma_shift) < 0.3 * sigma_shift, est.to_json()


def test_config_validation():
    with pytest.raises(InputError, match="rotation sigma"):
        LocalPoseConfig(rotation_sigma=-1.0)
    with pytest.raises(InputError, match="shift step"):
        LocalPoseConfig(shift_step=0.3)
    with pytest.raises(InputError, match="noise sigma"):
        LocalPoseConfig(kind="white")
    assert LocalPoseConfig(0.0, 0.0).n_rotations == 1
