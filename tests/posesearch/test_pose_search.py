"""Pose search: exact recovery, shifts, the marginal likelihood against direct sums, reweighting
without poses; the slow test reproduces the 500-particle adenylate-kinase acceptance."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from cryoensemble.errors import InputError
from cryoensemble.imaging import ArrayParticles, ImagingConfig, image_one, simulate_images_jit
from cryoensemble.inference import fit_weights_em, log_likelihood_marginal
from cryoensemble.ndimage import fourier_crop
from cryoensemble.noise import WhiteGaussianNoise, add_gaussian_noise, snr_noise_sigma
from cryoensemble.optics import CTFParams
from cryoensemble.pose import euler_to_matrix, hopf_grid, random_euler_angles, rotation_angle
from cryoensemble.posesearch import (
    PoseSearchConfig,
    marginal_log_likelihood_matrix,
    pose_search_arrays,
    prepare_reference,
    score_rotations,
)
from cryoensemble.posesearch._kernels import _slices
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure

BOX, PX = 32, 4.8


def _atoms(data_dir, name="open"):
    m = read_structure(data_dir / f"adk_{name}.pdb")
    return gaussian_atoms(m, selection="all", center=m.center_of_mass())


def _ctf(n, seed=0):
    rng = np.random.default_rng(seed)
    du = rng.uniform(8000, 20000, n).astype(np.float32)
    return CTFParams(
        defocus_u=du,
        defocus_v=du + rng.uniform(-300, 300, n).astype(np.float32),
        defocus_angle=rng.uniform(0, 180, n).astype(np.float32),
    )


@pytest.fixture(scope="module")
def adk_open(tmp_path_factory):
    from pathlib import Path

    data = Path(__file__).resolve().parents[2] / "src" / "cryoensemble" / "data"
    return _atoms(data, "open"), _atoms(data, "closed")


def test_exact_recovery_at_grid_poses(adk_open):
    """Noise-free images formed from the same map at grid rotations and integer shifts."""
    atoms = adk_open[0]
    cfg = PoseSearchConfig(base_level=1, n_refine=1, n_candidates=4, max_shift=3 * PX)
    proj = prepare_reference(atoms, BOX, PX, cfg)
    g = hopf_grid(1)
    pick = np.array([3, 100, 333, 501])
    shifts = np.array([[0, 0], [2, -1], [-3, 0], [1, 2]], np.float32) * PX
    ctf = _ctf(4)
    imaging = ImagingConfig(box_size=BOX, pixel_size=PX)  # pad factor 2, as the search
    images = simulate_images_jit(
        proj, jnp.asarray(g.rotations[pick]), jnp.asarray(shifts), ctf, imaging
    )
    res = pose_search_arrays(np.asarray(images), ctf, PX, [proj], cfg)
    err = np.asarray(
        rotation_angle(jnp.asarray(res.rotations[:, 0]), jnp.asarray(g.rotations[pick]))
    )
    assert np.all(err < 0.05), err
    np.testing.assert_allclose(res.shifts[:, 0], shifts, atol=0.02 * PX)
    assert np.all(res.marginal_log_likelihood <= res.log_likelihood + 1e-3)
    assert res.info["final_resolution_deg"] == 15.0


def test_shift_and_rotation_recovery_from_atom_images(adk_open):
    """Images of the atoms (the simulation path) at random poses and sub-pixel shifts."""
    atoms = adk_open[0]
    n = 6
    rot, tilt, psi = random_euler_angles(jax.random.key(3), n)
    r_true = euler_to_matrix(rot, tilt, psi)
    shifts = np.random.default_rng(1).uniform(-8, 8, (n, 2)).astype(np.float32)
    ctf = _ctf(n, 1)
    imaging = ImagingConfig.for_atoms(atoms, BOX, PX)
    images = simulate_images_jit(atoms, r_true, jnp.asarray(shifts), ctf, imaging)
    cfg = PoseSearchConfig(base_level=1, n_refine=3, n_candidates=4, max_shift=12.0)
    res = pose_search_arrays(np.asarray(images), ctf, PX, [atoms], cfg)
    err = np.asarray(rotation_angle(jnp.asarray(res.rotations[:, 0]), r_true))
    assert np.median(err) < cfg.final_resolution and err.max() < 3 * cfg.final_resolution, err
    # shifts to a fraction of the 4.8 A pixel
    assert np.median(np.abs(res.shifts[:, 0] - shifts)) < 0.25 * PX
    assert np.abs(res.shifts[:, 0] - shifts).max() < 0.6 * PX


def _direct_scores(proj, images, ctf, rotations, t_pix, pad, kind="marginal", sigma=None):
    """Scores through the imaging pipeline (image_one) and the likelihood functions, pose by pose."""
    imaging = ImagingConfig(box_size=BOX, pixel_size=PX, pad_factor=pad)

    def one(y, c, r, t):
        x = image_one(proj, r, -t * PX, c, imaging)
        if kind == "marginal":
            return log_likelihood_marginal(x, y)
        return WhiteGaussianNoise(sigma).log_likelihood(y, x)

    f = jax.vmap(
        jax.vmap(jax.vmap(one, (None, None, None, 0)), (None, None, 0, None)), (0, 0, None, None)
    )
    ctf = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(images),)), ctf)
    return np.asarray(jax.jit(f)(images, ctf, jnp.asarray(rotations), jnp.asarray(t_pix)))


def _noisy(atoms, n, seed, snr=1.0):
    rot, tilt, psi = random_euler_angles(jax.random.key(seed), n)
    r = euler_to_matrix(rot, tilt, psi)
    ctf = _ctf(n, seed)
    shifts = jnp.asarray(np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32) * 3)
    clean = simulate_images_jit(atoms, r, shifts, ctf, ImagingConfig.for_atoms(atoms, BOX, PX))
    sigma = snr_noise_sigma(clean, snr)
    return (
        np.asarray(add_gaussian_noise(jax.random.key(seed + 7), clean, sigma)),
        ctf,
        r,
        float(sigma[0]),
    )


@pytest.mark.parametrize("pad", [1.0, 2.0])
def test_scores_equal_the_pipeline_likelihood(adk_open, pad):
    """FFT scores at every shift = log_likelihood_marginal of the pipeline image at that pose;
    exact with pad factor 1 (circular shifts), to the edge fringes with 2."""
    atoms = adk_open[0]
    images, ctf, _, sigma = _noisy(atoms, 2, 0)
    cfg = PoseSearchConfig(max_shift=1.5 * PX, pad_factor=pad)
    proj = prepare_reference(atoms, BOX, PX, cfg)
    rots = hopf_grid(0).rotations[::9]
    s = score_rotations(images, ctf, proj, rots, PX, cfg)
    direct = _direct_scores(proj, images, ctf, rots, s["t"], pad)
    tol = 1e-3 if pad == 1.0 else 2e-2
    np.testing.assert_allclose(
        s["scores"], direct, rtol=0, atol=tol * np.abs(direct).max() / 1e3 + 0.05
    )
    # white likelihood too
    cw = PoseSearchConfig(max_shift=1.5 * PX, pad_factor=pad, kind="white", sigma=sigma)
    sw = score_rotations(images, ctf, proj, rots, PX, cw)
    dw = _direct_scores(proj, images, ctf, rots, sw["t"], pad, "white", sigma)
    np.testing.assert_allclose(sw["scores"], dw, rtol=1e-4 if pad == 1.0 else 1e-3, atol=0.05)


def test_marginal_equals_logsumexp_over_the_grid(adk_open):
    atoms = adk_open[0]
    images, ctf, _, _ = _noisy(atoms, 2, 1, snr=0.5)
    base = dict(max_shift=1.5 * PX, pad_factor=1.0, subpixel=False)
    proj = prepare_reference(atoms, BOX, PX)
    # level 0 only: log sum_r sum_t (1/72) p(t) exp(score)
    cfg0 = PoseSearchConfig(base_level=0, n_refine=0, **base)
    res = pose_search_arrays(images, ctf, PX, [proj], cfg0)
    g0 = hopf_grid(0)
    direct = _direct_scores(
        proj,
        images,
        ctf,
        g0.rotations,
        score_rotations(images, ctf, proj, g0.rotations[:1], PX, cfg0)["t"],
        1.0,
    )
    s = direct.shape[-1]
    want = logsumexp(direct.reshape(2, -1), axis=1) - np.log(72) - np.log(s)
    np.testing.assert_allclose(res.marginal_log_likelihood[:, 0], want, atol=2e-3)
    np.testing.assert_allclose(res.log_likelihood[:, 0], direct.reshape(2, -1).max(1), rtol=1e-5)
    # refining every level-0 cell gives the full level-1 grid (the children partition SO(3))
    cfg1 = PoseSearchConfig(base_level=0, n_refine=1, n_candidates=72, **base)
    res1 = pose_search_arrays(images, ctf, PX, [proj], cfg1)
    g1 = hopf_grid(1)
    full = score_rotations(images, ctf, proj, g1.rotations, PX, cfg1)
    lp = full["scores"] + full["log_prior"]
    want1 = logsumexp(lp.reshape(2, -1), axis=1) - np.log(576)
    np.testing.assert_allclose(res1.marginal_log_likelihood[:, 0], want1, atol=2e-3)
    # partial refinement: between the two, and the best pose is never worse than level 0
    cfg2 = PoseSearchConfig(base_level=0, n_refine=1, n_candidates=4, **base)
    res2 = pose_search_arrays(images, ctf, PX, [proj], cfg2)
    assert np.all(res2.log_likelihood[:, 0] >= res.log_likelihood[:, 0] - 1e-3)
    assert np.all(np.isfinite(res2.marginal_log_likelihood))


@pytest.mark.parametrize("coarse_box", [None, 16])
def test_reweighting_without_poses_small(adk_open, coarse_box):
    """Open/closed assignment from the pose-marginalised likelihood, no poses given (also with
    frequency marching: levels on 16 -> 32 -> 32 pixel boxes)."""
    opn, closed = adk_open
    n = 8
    z = np.array([0, 1, 0, 0, 1, 0, 1, 0])
    io, _, _, _ = _noisy(opn, n, 5, snr=2.0)
    ic, _, _, _ = _noisy(closed, n, 5, snr=2.0)
    images = np.where(z[:, None, None] == 0, io, ic)
    ctf = _ctf(n, 5)
    cfg = PoseSearchConfig(
        base_level=1, n_refine=2, n_candidates=4, max_shift=12.0, coarse_box=coarse_box
    )
    assert cfg.level_boxes(BOX, PX) == ([BOX] * 3 if coarse_box is None else [16, 32, 32])
    L = marginal_log_likelihood_matrix(ArrayParticles(images, ctf, PX), [opn, closed], cfg)
    assert L.shape == (n, 2) and np.all(np.isfinite(L))
    assert np.mean(np.argmax(L, 1) == z) >= 0.75
    w, _, _ = fit_weights_em(L)
    assert abs(w[0] - 5 / 8) < 0.2


def test_cropped_templates_equal_cropped_full_templates(adk_open):
    """A slice on the coarse grid of a Fourier-cropped level (pixel v N / b) is the Fourier crop
    of the full-grid template: v_b * irfft2(slice_b) = crop(v * irfft2(slice_N)) to rounding."""
    proj = prepare_reference(adk_open[0], BOX, PX)
    rots = jnp.asarray(hopf_grid(0).rotations[::17])
    full = jnp.fft.fftshift(jnp.fft.irfft2(_slices(proj, rots, BOX), s=(BOX, BOX)), axes=(-2, -1))
    for b in (8, 16):
        coarse = _slices(proj, rots, b, b / BOX)
        real = jnp.fft.fftshift(jnp.fft.irfft2(coarse, s=(b, b)), axes=(-2, -1))
        want = fourier_crop(PX * full, b)
        np.testing.assert_allclose(
            PX * BOX / b * real, want, atol=1e-4 * float(jnp.abs(want).max())
        )
    # a constant image stays constant; the mean is kept
    img = jnp.asarray(np.random.default_rng(0).normal(size=(2, BOX, BOX)), jnp.float32) + 3.0
    np.testing.assert_allclose(fourier_crop(img, 16).mean((1, 2)), img.mean((1, 2)), rtol=1e-5)


def test_level_boxes_and_band_limit():
    cfg = PoseSearchConfig()  # coarse_box 32, doubled per level up to the full box
    assert cfg.level_boxes(128, 1.2) == [32, 64, 128]
    assert cfg.level_boxes(256, 1.0) == [32, 64, 256]  # the last level: always the final box
    assert PoseSearchConfig(n_refine=3).level_boxes(256, 1.0) == [32, 64, 128, 256]
    assert PoseSearchConfig(n_refine=0).level_boxes(128, 1.2) == [128]
    assert PoseSearchConfig(coarse_box=None).level_boxes(128, 1.2) == [128] * 3
    # band limit 4 A on 1.2 A pixels: Nyquist 1/4 A^-1 -> box 2 * 128 * 1.2 / 4 = 76.8 -> 78
    assert PoseSearchConfig(band_limit=4.0).level_boxes(128, 1.2) == [32, 64, 78]
    assert PoseSearchConfig(band_limit=1.0).level_boxes(128, 1.2) == [32, 64, 128]
    with pytest.raises(InputError, match="coarse box"):
        PoseSearchConfig(coarse_box=4)
    with pytest.raises(InputError, match="band limit"):
        PoseSearchConfig(band_limit=-1.0)


def test_bad_inputs(adk_open):
    with pytest.raises(InputError, match="base level"):
        PoseSearchConfig(base_level=-1)
    with pytest.raises(InputError, match="sigma"):
        PoseSearchConfig(kind="white")
    with pytest.raises(InputError, match="one of"):
        PoseSearchConfig(kind="colored")
    with pytest.raises(InputError, match="max shift"):
        PoseSearchConfig(max_shift=-1.0)
    with pytest.raises(InputError, match="shape"):
        prepare_reference(np.zeros((8, 8, 8)), BOX, PX)
    proj = prepare_reference(adk_open[0], BOX, PX)
    with pytest.raises(InputError, match="voxels"):
        prepare_reference(proj, 2 * BOX, PX)
    with pytest.raises(InputError, match="does not fit"):
        score_rotations(
            np.zeros((1, BOX, BOX)),
            _ctf(1),
            proj,
            hopf_grid(0).rotations[:1],
            PX,
            PoseSearchConfig(max_shift=40 * PX),
        )


# -- the acceptance: 500 ADK particles, 128 x 128 at 1.2 A, SNR 0.1, open/closed 0.7/0.3 -----------
def adk_acceptance(data_dir, n=500, box=128, px=1.2, snr=0.1, seed=0, config=None):
    """Simulate (exactly 70 % open), search poses against both structures, fit the weights."""
    opn, closed = _atoms(data_dir, "open"), _atoms(data_dir, "closed")
    rng = np.random.default_rng(seed)
    z = rng.permutation((np.arange(n) >= round(0.7 * n)).astype(int))
    rot, tilt, psi = random_euler_angles(jax.random.key(seed), n)
    r_true = euler_to_matrix(rot, tilt, psi)
    shifts = (rng.normal(size=(n, 2)) * 2).astype(np.float32)
    du = rng.uniform(8000, 20000, n).astype(np.float32)
    ctf = CTFParams(
        defocus_u=du,
        defocus_v=du + rng.uniform(-500, 500, n).astype(np.float32),
        defocus_angle=rng.uniform(0, 180, n).astype(np.float32),
    )
    imaging = ImagingConfig.for_atoms(opn, box, px)
    imgs = [
        simulate_images_jit(a, r_true, jnp.asarray(shifts), ctf, imaging) for a in (opn, closed)
    ]
    clean = jnp.where(jnp.asarray(z)[:, None, None] == 1, imgs[1], imgs[0])
    sigma = snr_noise_sigma(clean, snr)
    images = np.asarray(add_gaussian_noise(jax.random.key(seed + 1), clean, sigma))
    cfg = config or PoseSearchConfig(base_level=2, n_refine=2, n_candidates=8)
    t0 = time.perf_counter()
    res = pose_search_arrays(images, ctf, px, [opn, closed], cfg)
    elapsed = time.perf_counter() - t0
    rows = np.arange(n)
    err_true = np.asarray(rotation_angle(jnp.asarray(res.rotations[rows, z]), r_true))
    best = res.best()
    err_best = np.asarray(rotation_angle(jnp.asarray(best["rotations"]), r_true))
    shift_err = np.linalg.norm(res.shifts[rows, z] - shifts, axis=1)
    w, _, _ = fit_weights_em(res.marginal_log_likelihood)
    return {
        "n": n,
        "final_resolution": cfg.final_resolution,
        "median_error_true_structure": float(np.median(err_true)),
        "median_error_best_structure": float(np.median(err_best)),
        "p90_error": float(np.percentile(err_true, 90)),
        "fraction_over_10deg": float(np.mean(err_true > 10)),
        "median_shift_error": float(np.median(shift_err)),
        "weights": w.tolist(),
        "assignment_accuracy": float(np.mean(res.best_structure == z)),
        "elapsed_s": elapsed,
        "particles_per_s": n / elapsed,
    }


@pytest.mark.slow  # ~5 min on 2 shared CPU cores (frequency marching; ~1 h before); 17 s on an H200
def test_adk_acceptance(data_dir):
    out = adk_acceptance(data_dir)
    print(out)
    assert out["median_error_true_structure"] < out["final_resolution"]
    assert abs(out["weights"][0] - 0.7) < 0.05
