"""Tests of the closed-form rotation solvers (DRaM EnP/OnP, Kabsch, Horn, superpose)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from cryoensemble.errors import InputError
from cryoensemble.pose import (
    dram_enp,
    dram_enp_batched,
    dram_enp_matrix,
    dram_onp,
    dram_onp_batched,
    dram_onp_matrix,
    horn,
    horn_batched,
    kabsch,
    kabsch_batched,
    nearest_rotation_quaternion,
    nearest_rotation_svd,
    quaternion_to_matrix,
    rmsd,
    rotation_angle,
    superpose,
)

# the paper's appendix case (Hanson & Hanson 2025): 21.5 degrees about (1, 2, 4)/sqrt(21)
PAPER_AXIS = np.array([1.0, 2.0, 4.0]) / np.sqrt(21.0)
PAPER_ANGLE = np.radians(21.5)
# Rodrigues' formula for that axis and angle, printed to 12 decimals
PAPER_MATRIX = np.array(
    [
        [0.933731017126, -0.313281599571, 0.173208045504],
        [0.326535396146, 0.943671364557, -0.053469531315],
        [-0.146700452355, 0.106484717614, 0.983432754281],
    ]
)


def rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def points(rng, n=12, axes=(3.0, 1.5, 0.7)):
    return rng.normal(size=(n, 3)) * np.asarray(axes) + np.array([5.0, -2.0, 1.0])


def residual(x, y, r):
    xc, yc = x - x.mean(0), y - y.mean(0)
    return float(np.sum((yc - xc @ r.T) ** 2))


def is_proper_rotation(r, tol):
    r = np.asarray(r, np.float64)
    return np.allclose(r.T @ r, np.eye(3), atol=tol) and abs(np.linalg.det(r) - 1) < tol


@pytest.fixture
def rng():
    return np.random.default_rng(20250101)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


# ------------------------------------------------------------------------------------------
# exact data
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_exact_float32(seed, rng):
    # float32 accuracy is limited by the rounding of the input relative to the point spread,
    # so use a well-spread cloud near the origin
    x = (rng.normal(size=(12, 3)) * np.array([1.5, 1.2, 1.0])).astype(np.float32)
    r = Rotation.random(random_state=seed).as_matrix()
    y = (x @ r.T + np.array([0.5, -0.5, 0.25])).astype(np.float32)
    for solver in (dram_enp, kabsch, horn):
        got = solver(x, y)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got), r, atol=1e-6)
    got = dram_onp(x, y[:, :2])
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), r, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(dram_onp(x, y[:, :2], correction="quaternion")), r, atol=1e-6
    )


@pytest.mark.parametrize("seed", range(4))
def test_exact_float64(seed, rng, x64):
    x = points(rng)
    r = Rotation.random(random_state=seed).as_matrix()
    y = x @ r.T + np.array([1.0, 2.0, 3.0])
    for solver in (dram_enp, kabsch, horn):
        got = solver(x, y)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), r, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dram_enp_matrix(x, y)), r, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dram_onp(x, y[:, :2])), r, atol=1e-12)
    np.testing.assert_allclose(np.asarray(dram_onp_matrix(x, y[:, :2])), r[:2], atol=1e-12)


def test_paper_appendix_case(x64):
    r = rodrigues(PAPER_AXIS, PAPER_ANGLE)
    np.testing.assert_allclose(r, PAPER_MATRIX, atol=1e-12)
    x = np.array(
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]]
    )
    y = x @ r.T
    for correction in ("svd", "quaternion"):
        np.testing.assert_allclose(np.asarray(dram_enp(x, y, correction=correction)), r, atol=1e-12)
        np.testing.assert_allclose(
            np.asarray(dram_onp(x, y[:, :2], correction=correction)), r, atol=1e-12
        )
    np.testing.assert_allclose(np.asarray(dram_enp_matrix(x, y)), r, atol=1e-12)
    got = np.asarray(dram_enp(x, y))
    np.testing.assert_allclose(rotation_angle(got), 21.5, atol=1e-9)


def test_paper_appendix_case_float32():
    r = rodrigues(PAPER_AXIS, PAPER_ANGLE)
    x = np.array(
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]],
        np.float32,
    )
    y = (x @ r.T).astype(np.float32)
    np.testing.assert_allclose(np.asarray(dram_enp(x, y)), r, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dram_onp(x, y[:, :2])), r, atol=1e-6)


def test_dram_equals_least_squares_and_pinv(rng, x64):
    x = points(rng, n=15)
    y = rng.normal(size=(15, 3))  # arbitrary target: DRaM is the unconstrained least squares
    xc, yc = (x - x.mean(0)).T, (y - y.mean(0)).T  # 3 x n, columns are points
    m = np.asarray(dram_enp_matrix(x, y))
    np.testing.assert_allclose(m, yc @ xc.T @ np.linalg.inv(xc @ xc.T), atol=1e-12)
    np.testing.assert_allclose(m, yc @ np.linalg.pinv(xc), atol=1e-12)
    m2 = np.asarray(dram_onp_matrix(x, y[:, :2]))
    np.testing.assert_allclose(m2, yc[:2] @ np.linalg.pinv(xc), atol=1e-12)
    # weighted: Y W X^T (X W X^T)^-1 with weighted centroids
    w = rng.uniform(0.1, 2.0, size=15)
    xw = (x - w @ x / w.sum()).T
    yw = (y - w @ y / w.sum()).T
    expect = (yw * w) @ xw.T @ np.linalg.inv((xw * w) @ xw.T)
    np.testing.assert_allclose(np.asarray(dram_enp_matrix(x, y, w)), expect, atol=1e-12)


def test_onp_third_row_is_cross_product(rng, x64):
    x = points(rng)
    r = Rotation.random(random_state=7).as_matrix()
    p = (x @ r.T)[:, :2]
    m2 = np.asarray(dram_onp_matrix(x, p))
    np.testing.assert_allclose(np.cross(m2[0], m2[1]), r[2], atol=1e-12)
    got = np.asarray(dram_onp(x, p))
    np.testing.assert_allclose(got[2], np.cross(got[0], got[1]), atol=1e-12)
    # with noise the corrected rotation is still proper
    pn = p + 0.05 * rng.normal(size=p.shape)
    assert is_proper_rotation(dram_onp(x, pn), 1e-12)


# ------------------------------------------------------------------------------------------
# nearest-rotation corrections
# ------------------------------------------------------------------------------------------


def test_nearest_rotation_svd_equals_quaternion(rng, x64):
    m = rng.normal(size=(50, 3, 3))
    m[::2] *= -1.0  # include matrices with negative determinant
    r_svd = np.asarray(nearest_rotation_svd(m))
    r_q = np.asarray(nearest_rotation_quaternion(m))
    np.testing.assert_allclose(r_svd, r_q, atol=1e-9)
    for r, mm in zip(r_svd, m, strict=True):
        assert is_proper_rotation(r, 1e-12)
        # no random proper rotation is closer
        rand = Rotation.random(200, random_state=1).as_matrix()
        assert np.linalg.norm(r - mm) <= np.linalg.norm(rand - mm, axis=(1, 2)).min() + 1e-12


def test_quaternion_to_matrix_matches_scipy(rng):
    q = rng.normal(size=(10, 4))
    expect = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(np.asarray(quaternion_to_matrix(q)), expect, atol=1e-6)


# ------------------------------------------------------------------------------------------
# noisy data
# ------------------------------------------------------------------------------------------


def test_noisy_enp_kabsch_horn_agree_and_dram_is_proper(rng, x64):
    x = points(rng, n=30)
    for seed in range(10):
        r = Rotation.random(random_state=seed).as_matrix()
        y = x @ r.T + 0.1 * rng.normal(size=x.shape)
        rk, rh, rd = (np.asarray(f(x, y)) for f in (kabsch, horn, dram_enp))
        np.testing.assert_allclose(rk, rh, atol=1e-10)
        assert is_proper_rotation(rd, 1e-12)
        # Kabsch is the least-squares optimum; DRaM is at best equal
        assert residual(x, y, rd) >= residual(x, y, rk) - 1e-9
        np.testing.assert_allclose(
            np.asarray(dram_enp(x, y, correction="quaternion")), rd, atol=1e-9
        )


def _expected_excess(x, sigma):
    """First-order expected (DRaM - Kabsch) residual excess for isotropic noise sigma on y.

    With centred reference rows X, S = X^T X, H = tr(S) I - S and G = N^T X (N the noise),
    Kabsch rotates by dk = H^-1 vee(G - G^T), corrected DRaM by dd = vee(skew(G S^-1));
    the residual excess is (dd - dk)^T H (dd - dk), a quadratic form in N.
    """
    xc = x - x.mean(0)
    s = xc.T @ xc
    h = np.trace(s) * np.eye(3) - s
    s_inv, h_inv = np.linalg.inv(s), np.linalg.inv(h)

    def vee(a):
        return np.array([a[2, 1], a[0, 2], a[1, 0]])

    total = 0.0
    for i in range(len(x)):
        for a in range(3):
            g = np.zeros((3, 3))
            g[a] = xc[i]  # G = N^T X for N with a single unit entry (i, a)
            e = g @ s_inv
            d = vee(0.5 * (e - e.T)) - h_inv @ vee(g - g.T)
            total += d @ h @ d
    return sigma**2 * total


def test_noisy_enp_dram_residual_within_expected_margin(rng, x64):
    x = points(rng, n=20)
    sigma, trials = 0.01, 400
    rots = Rotation.random(trials, random_state=3).as_matrix()
    xs = np.broadcast_to(x, (trials, *x.shape))
    ys = np.einsum("bij,nj->bni", rots, x) + sigma * rng.normal(size=(trials, *x.shape))
    rd = np.asarray(dram_enp_batched(xs, ys))
    rk = np.asarray(kabsch_batched(xs, ys))
    excess = np.array(
        [residual(x, y, a) - residual(x, y, b) for y, a, b in zip(ys, rd, rk, strict=True)]
    )
    assert (excess >= -1e-12).all()
    ratio = excess.mean() / _expected_excess(x, sigma)
    assert 0.8 < ratio < 1.2, ratio


def _quat_matrix_np(q):
    """Rotation matrix of a (w, x, y, z) quaternion, in numpy (fast inside scipy loops)."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _onp_objective(q, xc, pc):
    r = _quat_matrix_np(q)
    return float(np.sum((pc - xc @ r[:2].T) ** 2))


def test_noisy_onp_against_constrained_optimum(rng, x64):
    """DRaM OnP vs. numerical minimisation over unit quaternions (the iterative optimum)."""
    x = points(rng, n=20)
    xc = x - x.mean(0)
    gaps, errs = [], []
    for seed in range(8):
        r = Rotation.random(random_state=100 + seed).as_matrix()
        p = (x @ r.T)[:, :2] + 0.05 * rng.normal(size=(20, 2))
        pc = p - p.mean(0)
        rd = np.asarray(dram_onp(x, p))
        q_d = Rotation.from_matrix(rd).as_quat()[[3, 0, 1, 2]]
        starts = [q_d, *rng.normal(size=(4, 4))]
        best = min(
            (minimize(_onp_objective, q0, args=(xc, pc), method="BFGS") for q0 in starts),
            key=lambda o: o.fun,
        )
        r_opt = _quat_matrix_np(best.x)
        assert best.fun <= _onp_objective(q_d, xc, pc) + 1e-10
        gaps.append(float(rotation_angle(rd, r_opt)))
        errs.append(float(rotation_angle(r_opt, r)))
    print(f"OnP angular gap DRaM vs optimum: median {np.median(gaps):.3f} max {max(gaps):.3f} deg")
    assert max(gaps) < 3.0
    assert np.median(gaps) < 1.0


# ------------------------------------------------------------------------------------------
# weights, centring, batching, superposition
# ------------------------------------------------------------------------------------------


def test_weights(rng, x64):
    x = points(rng, n=14)
    r = Rotation.random(random_state=5).as_matrix()
    y = x @ r.T + 0.05 * rng.normal(size=x.shape)
    y_bad = y.copy()
    y_bad[:3] += 50.0  # outliers with zero weight
    w = np.ones(14)
    w[:3] = 0.0
    for solver in (dram_enp, kabsch, horn):
        np.testing.assert_allclose(
            np.asarray(solver(x, y_bad, w)), np.asarray(solver(x[3:], y[3:])), atol=1e-12
        )
    np.testing.assert_allclose(
        np.asarray(dram_onp(x, y_bad[:, :2], w)), np.asarray(dram_onp(x[3:], y[3:, :2])), atol=1e-12
    )
    # integer weights are equivalent to repeated points
    wi = rng.integers(1, 4, size=14)
    rep = np.repeat(np.arange(14), wi)
    np.testing.assert_allclose(
        np.asarray(dram_enp(x, y, wi.astype(float))),
        np.asarray(dram_enp(x[rep], y[rep])),
        atol=1e-12,
    )


def test_centring_and_scale_invariance(rng, x64):
    x = points(rng)
    r = Rotation.random(random_state=9).as_matrix()
    y = x @ r.T + 0.05 * rng.normal(size=x.shape)
    base = np.asarray(dram_enp(x, y))
    np.testing.assert_allclose(np.asarray(dram_enp(x + 100.0, y - 30.0)), base, atol=1e-10)
    np.testing.assert_allclose(np.asarray(dram_enp(1e3 * x, 1e3 * y)), base, atol=1e-10)


def test_large_coordinates_float32(rng):
    x = (1e3 * rng.normal(size=(2000, 3))).astype(np.float32)  # Angstrom-scale, many atoms
    r = Rotation.random(random_state=2).as_matrix()
    y = (x @ r.T).astype(np.float32)
    np.testing.assert_allclose(np.asarray(dram_enp(x, y)), r, atol=1e-5)


def test_batched_matches_single(rng):
    b, n = 6, 10
    xs = rng.normal(size=(b, n, 3)).astype(np.float32)
    rots = Rotation.random(b, random_state=4).as_matrix()
    ys = (np.einsum("bij,bnj->bni", rots, xs) + 0.05 * rng.normal(size=(b, n, 3))).astype(
        np.float32
    )
    ws = rng.uniform(0.5, 1.5, size=(b, n)).astype(np.float32)
    for batched, single in (
        (dram_enp_batched, dram_enp),
        (kabsch_batched, kabsch),
        (horn_batched, horn),
    ):
        got = np.asarray(batched(xs, ys, ws))
        assert got.shape == (b, 3, 3)
        for i in range(b):
            np.testing.assert_allclose(got[i], np.asarray(single(xs[i], ys[i], ws[i])), atol=1e-5)
    got = np.asarray(dram_onp_batched(xs, ys[..., :2], correction="quaternion"))
    for i in range(b):
        np.testing.assert_allclose(got[i], np.asarray(dram_onp(xs[i], ys[i, :, :2])), atol=1e-5)


def test_traceable_inside_jit(rng):
    x = points(rng).astype(np.float32)
    r = Rotation.random(random_state=11).as_matrix()
    y = (x @ r.T).astype(np.float32)
    got = jax.jit(dram_enp)(x, y)  # host validation is skipped for tracers
    np.testing.assert_allclose(np.asarray(got), r, atol=1e-6)


@pytest.mark.parametrize("method", ["dram", "kabsch", "horn"])
def test_superpose(method, rng, x64):
    ref = points(rng, n=25)
    r = Rotation.random(random_state=13).as_matrix()
    t = np.array([3.0, -1.0, 2.0])
    mobile = (ref - 0.5) @ r + 7.0  # some rigid transform of the reference
    aligned, r_fit, t_fit, dev = superpose(mobile, ref, method=method)
    np.testing.assert_allclose(np.asarray(aligned), ref, atol=1e-10)
    np.testing.assert_allclose(
        np.asarray(mobile @ np.asarray(r_fit).T + np.asarray(t_fit)), ref, atol=1e-10
    )
    assert float(dev) < 1e-10
    noisy = ref + 0.1 * rng.normal(size=ref.shape)
    moved = noisy @ r.T + t
    _, _, _, dev_method = superpose(moved, ref, method=method)
    _, _, _, dev_kabsch = superpose(moved, ref, method="kabsch")
    assert float(dev_kabsch) <= float(dev_method) + 1e-12
    assert float(dev_method) < 0.2


def test_rmsd(x64):
    a = np.zeros((4, 3))
    b = np.zeros((4, 3))
    b[:, 0] = [1.0, 1.0, 3.0, 3.0]
    assert float(rmsd(a, b)) == pytest.approx(np.sqrt(5.0))
    assert float(rmsd(a, b, np.array([1.0, 1.0, 0.0, 0.0]))) == pytest.approx(1.0)
    with pytest.raises(InputError, match="same shape"):
        rmsd(a, b[:3])


def test_rotation_angle_small(x64):
    r = rodrigues(PAPER_AXIS, 1e-7)
    assert float(rotation_angle(r)) == pytest.approx(np.degrees(1e-7), rel=1e-6)
    assert float(rotation_angle(np.eye(3), PAPER_MATRIX)) == pytest.approx(21.5)


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------

GOOD = np.random.default_rng(0).normal(size=(6, 3))


def _with_nan(a, where=(2, 1), value=np.nan):
    a = a.copy()
    a[where] = value
    return a


COPLANAR = (
    np.c_[np.random.default_rng(1).normal(size=(8, 2)), np.zeros(8)]
    @ Rotation.random(random_state=0).as_matrix()
)
COLLINEAR = np.outer(np.arange(6.0), [1.0, 2.0, 3.0]) + 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((GOOD[:3], GOOD[:3]), {}, "at least 4 points"),
        ((COPLANAR, COPLANAR), {}, "coplanar"),
        ((COLLINEAR, COLLINEAR), {}, "collinear"),
        ((np.ones((5, 3)), GOOD[:5]), {}, "coincide"),
        ((_with_nan(GOOD), GOOD), {}, r"reference has non-finite .* \[2\]"),
        ((GOOD, _with_nan(GOOD, (4, 0), np.inf)), {}, r"target has non-finite .* \[4\]"),
        ((GOOD, GOOD[:5]), {}, "same number of points"),
        ((GOOD[:, :2], GOOD[:, :2]), {}, r"reference must have shape \(n, 3\)"),
        ((GOOD, GOOD[:, :2]), {}, r"target must have shape \(n, 3\)"),
        ((GOOD[0], GOOD[0]), {}, r"reference must have shape"),
        ((GOOD, GOOD), {"weights": np.ones(5)}, r"weights must have shape \(6,\)"),
        ((GOOD, GOOD), {"weights": -np.ones(6)}, ">= 0"),
        ((GOOD, GOOD), {"weights": _with_nan(np.ones(6), 0)}, "finite"),
        ((GOOD, GOOD), {"weights": np.array([1.0, 1, 1, 0, 0, 0])}, "weight > 0"),
        ((GOOD, GOOD), {"correction": "polar"}, "correction must be one of"),
        ((["a", "b"], GOOD), {}, "reference must be a numeric array"),
    ],
)
def test_dram_enp_bad_input(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        dram_enp(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((GOOD, GOOD), r"projected must have shape \(n, 2\)"),
        ((GOOD[:3], GOOD[:3, :2]), "at least 4 points"),
        ((COPLANAR, COPLANAR[:, :2]), "coplanar"),
        ((GOOD, _with_nan(GOOD[:, :2], (0, 1))), "projected has non-finite"),
        ((GOOD, GOOD[:4, :2]), "same number of points"),
    ],
)
def test_dram_onp_bad_input(args, match):
    with pytest.raises(InputError, match=match):
        dram_onp(*args)


def test_procrustes_degeneracy():
    # Kabsch/Horn need only 3 non-collinear points (coplanar is fine), DRaM needs 4 non-coplanar
    r = Rotation.random(random_state=3).as_matrix()
    for solver in (kabsch, horn):
        np.testing.assert_allclose(np.asarray(solver(COPLANAR, COPLANAR @ r.T)), r, atol=1e-5)
        np.testing.assert_allclose(np.asarray(solver(GOOD[:3], GOOD[:3] @ r.T)), r, atol=1e-5)
        with pytest.raises(InputError, match="collinear"):
            solver(COLLINEAR, COLLINEAR)
        with pytest.raises(InputError, match="at least 3 points"):
            solver(GOOD[:2], GOOD[:2])
    with pytest.raises(InputError, match="method must be one of"):
        superpose(GOOD, GOOD, method="icp")
