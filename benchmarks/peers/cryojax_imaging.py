"""Peer benchmark: cryoJAX 0.6.0 on the adenylate-kinase imaging case.

Run with the *peer* environment (cryoJAX is never a dependency of cryoensemble)::

    .venv-peers/bin/python benchmarks/peers/cryojax_imaging.py \
        --pdb src/cryoensemble/data/adk_open.pdb --batch 64 --repeats 5 --out result.json \
        [--poses poses.npz --images-out images.npz]

Case: 128 x 128 images, 1.2 A/pixel, 300 kV, mean defocus U(10000, 20000) A, astigmatism
U(0, 500) A at a random angle, Cs 2.7 mm, amplitude contrast 0.1, uniform random rotations, shifts
U(-5, 5) A per axis, float32, Peng form factors without B-factors, model centred at its
mass-weighted centre (cryoJAX's own centring). Four figures, each images/s as the median of
``--repeats`` timed runs after a compiling warm-up call:

* ``atoms_fast``: ``GaussianMixtureVolume`` + ``GaussianMixtureProjection(n_spread=<per-term
  widths from suggest_n_spread(volume, pixel_size)>)``: truncated (4 sigma) Gaussian spreading of
  pixel-averaged (erf) Gaussians, cryoJAX's recommended fast path.
* ``atoms_default``: ``GaussianMixtureVolume`` + ``AutoVolumeProjection()`` (which resolves to
  ``GaussianMixtureProjection()``: dense erf integrals over the whole image).
* ``map_linear``: ``FourierVoxelGridVolume`` (128^3 map at 1.2 A rendered by cryoJAX's
  ``AutoVolumeRenderFn`` -> dense ``GaussianMixtureRenderFn``), ``FourierSliceExtraction`` with
  linear interpolation.
* ``grad``: ``jax.grad`` w.r.t. all atom positions of the summed ``GaussianWhiteNoiseModel``
  log-likelihood over the batch (atoms_fast path), against fixed synthetic noisy images.

All forward paths apply cryoJAX's ``AstigmaticCTF`` through ``ContrastTransferTheory`` in a
``LinearImageModel`` built by ``make_image_model`` (cryoJAX's default: no padding, translation by
Fourier phase shifts). The batch is an ``eqx.filter_vmap`` over a function that builds the
config/pose/CTF/image model per particle, under ``eqx.filter_jit``.

Each figure runs in its own child process (unless ``--no-isolate``) so that its peak RSS
(``ru_maxrss``) is its own; the top-level ``peak_rss_mb`` is the largest of them.

Conventions (checked at start-up against RELION formulas, and image by image against cryoensemble
by ``check_conventions.py``):

* rotation: cryoJAX's ``EulerAnglePose`` applies R = Rz(psi) Ry(theta) Rz(phi) (active, extrinsic)
  to the atoms; RELION's A = Rz(-psi) Ry(-tilt) Rz(-rot), so (phi, theta, psi) = (-rot, -tilt, -psi).
* shift: cryoJAX moves the particle by +offset; RELION's origin is the shift that re-centres it
  (the centre appears at N//2 - origin/pixel), so offset = -origin.
* CTF: cryoJAX's astigmatism azimuth is arctan2(qx, qy) (measured from the qy axis), so
  defocus = (U + V)/2, astigmatism = U - V, astigmatism_angle = 90 - rlnDefocusAngle.
  cryoJAX's CTF is +sin(chi - w), RELION's is -sin(chi - w): cryoJAX images with CTF have the
  opposite sign (dark protein); images are saved as cryoJAX makes them.
* units: cryoJAX's Peng amplitudes are the a_i in A, so its projections are in 1/A; cryoensemble's
  are 47.878 * that (V A). Saved images are cryoJAX's raw output.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

N = 128
PIXEL_SIZE = 1.2
VOLTAGE_KV = 300.0
CS_MM = 2.7
AMPLITUDE_CONTRAST = 0.1
N_SAVED = 8
PATHS = ("atoms_fast", "atoms_default", "map_linear", "grad")

# Standard atomic weights for elements inferred from atom names (files without element columns).
_ATOMIC = {
    "H": (1, 1.008),
    "C": (6, 12.011),
    "N": (7, 14.007),
    "O": (8, 15.999),
    "P": (15, 30.974),
    "S": (16, 32.06),
}


# ------------------------------------------------------------------------------------ loading


def _element_columns_blank(pdb: pathlib.Path) -> bool:
    lines = [ln for ln in pdb.read_text().splitlines() if ln.startswith(("ATOM", "HETATM"))]
    return all(ln[76:78].strip() == "" for ln in lines)


def load_volume(pdb: pathlib.Path):
    """Peng-factor ``GaussianMixtureVolume`` of all atoms, centred at the centre of mass, float32.

    Uses ``cryojax.simulator.load_tabulated_volume`` (mmdf reader, mass centring, no B-factors).
    mmdf guesses elements of PDB files without an element column (CHARMM-style, as adk_open.pdb)
    wrongly (e.g. HG1 -> mercury), so for such files the element is taken from the first letter
    of the atom name (after leading digits), as cryoensemble does for standard residues.
    """
    import cryojax.simulator as cxs
    import jax
    import jax.numpy as jnp
    import mmdf

    df = mmdf.read(pdb)
    if _element_columns_blank(pdb):
        names = df["atom"].astype(str).str.strip().str.lstrip("0123456789").str[:1].str.upper()
        bad = sorted(set(names) - set(_ATOMIC))
        if bad:
            raise ValueError(f"cannot infer elements from atom names starting with {bad}")
        df = df.copy()
        df["element"] = names.to_numpy()
        df["atomic_number"] = np.array([_ATOMIC[e][0] for e in names], dtype=int)
        df["atomic_weight"] = np.array([_ATOMIC[e][1] for e in names], dtype=float)
    volume = cxs.load_tabulated_volume(
        df, output_type=cxs.GaussianMixtureVolume, include_b_factors=False
    )
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=jnp.float32), volume)


# ------------------------------------------------------------------------------- conventions


def relion_to_cryojax(
    rot, tilt, psi, shift_x, shift_y, defocus_u, defocus_v, defocus_angle
) -> dict:
    """Per-particle cryoJAX parameters (float32 arrays) from RELION-convention ones."""
    f = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    du, dv = f(defocus_u), f(defocus_v)
    return {
        "phi": -f(rot),
        "theta": -f(tilt),
        "psi": -f(psi),
        "offset_x": -f(shift_x),
        "offset_y": -f(shift_y),
        "defocus": 0.5 * (du + dv),
        "astigmatism": du - dv,
        "astigmatism_angle": np.float32(90.0) - f(defocus_angle),
    }


def _relion_matrix(rot, tilt, psi) -> np.ndarray:
    ph, th, ps = np.deg2rad([rot, tilt, psi])
    rz = lambda a: np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])  # noqa: E731
    ry = lambda a: np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])  # noqa: E731
    return rz(-ps) @ ry(-th) @ rz(-ph)


def self_check_conventions() -> dict:
    """Check the rotation and CTF mappings against RELION's formulas (cheap, at start-up)."""
    import cryojax.simulator as cxs

    rng = np.random.default_rng(1)
    rot, tilt, psi = rng.uniform(-180, 180), rng.uniform(0, 180), rng.uniform(-180, 180)
    p = relion_to_cryojax(rot, tilt, psi, 0.0, 0.0, 15000.0, 14600.0, 37.0)
    pose = cxs.EulerAnglePose(0.0, 0.0, p["phi"], p["theta"], p["psi"])
    rot_err = float(
        np.abs(np.asarray(pose.rotation.as_matrix()) - _relion_matrix(rot, tilt, psi)).max()
    )
    # CTF: cryoJAX's array vs RELION's -sin(gamma) on the same rfft grid.
    config = cxs.BasicImageConfig((N, N), PIXEL_SIZE, VOLTAGE_KV)
    ctf = cxs.AstigmaticCTF(p["defocus"], p["astigmatism"], p["astigmatism_angle"], CS_MM)
    grid = config.get_frequency_grid(padding=True, physical=True)
    lam = float(config.wavelength_in_angstroms)
    c_jax = np.asarray(ctf(grid, lam, amplitude_contrast_ratio=AMPLITUDE_CONTRAST))
    kx, ky = np.asarray(grid[..., 0], np.float64), np.asarray(grid[..., 1], np.float64)
    phi = np.arctan2(ky, kx)
    ang = np.deg2rad(37.0)
    dz = 15000.0 * np.cos(phi - ang) ** 2 + 14600.0 * np.sin(phi - ang) ** 2
    k2 = kx**2 + ky**2
    w = np.arctan(AMPLITUDE_CONTRAST / np.sqrt(1 - AMPLITUDE_CONTRAST**2))
    gamma = -np.pi * lam * dz * k2 + 0.5 * np.pi * CS_MM * 1e7 * lam**3 * k2**2 - w
    c_relion = -np.sin(gamma)
    ctf_err = float(np.abs(c_jax + c_relion).max())  # cryoJAX = -RELION
    if rot_err > 1e-4 or ctf_err > 2e-3:
        raise RuntimeError(
            f"convention mapping broken: rotation error {rot_err}, CTF error {ctf_err}"
        )
    return {"rotation_max_abs_err": rot_err, "ctf_max_abs_err_vs_minus_relion": ctf_err}


# ------------------------------------------------------------------------------- simulation


def build_image_model(volume, integrator, p, with_ctf: bool = True):
    """cryoJAX image model for one particle; ``p`` holds scalars (see :func:`relion_to_cryojax`)."""
    import cryojax.simulator as cxs

    config = cxs.BasicImageConfig((N, N), PIXEL_SIZE, VOLTAGE_KV)
    pose = cxs.EulerAnglePose(p["offset_x"], p["offset_y"], p["phi"], p["theta"], p["psi"])
    transfer_theory = None
    if with_ctf:
        ctf = cxs.AstigmaticCTF(p["defocus"], p["astigmatism"], p["astigmatism_angle"], CS_MM)
        transfer_theory = cxs.ContrastTransferTheory(
            ctf, amplitude_contrast_ratio=AMPLITUDE_CONTRAST
        )
    return cxs.make_image_model(volume, config, pose, transfer_theory, volume_integrator=integrator)


def make_simulate_batch(integrator, with_ctf: bool = True):
    import equinox as eqx

    def simulate_one(volume, p):
        return build_image_model(volume, integrator, p, with_ctf).simulate()

    return eqx.filter_jit(eqx.filter_vmap(simulate_one, in_axes=(None, 0)))


def make_grad_fn(integrator, variance: float):
    import cryojax.simulator as cxs
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    def log_likelihood(positions, volume, params, data):
        volume = eqx.tree_at(lambda v: v.positions, volume, positions)

        def one(p, observed):
            model = build_image_model(volume, integrator, p, with_ctf=True)
            return cxs.GaussianWhiteNoiseModel(model, variance=variance).log_likelihood(observed)

        return jnp.sum(eqx.filter_vmap(one)(params, data))

    return eqx.filter_jit(jax.grad(log_likelihood))


def random_relion_params(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    rot = rng.uniform(-180, 180, batch)
    tilt = np.rad2deg(np.arccos(rng.uniform(-1, 1, batch)))  # uniform on SO(3) with rot, psi
    psi = rng.uniform(-180, 180, batch)
    shift_x, shift_y = rng.uniform(-5, 5, batch), rng.uniform(-5, 5, batch)
    defocus = rng.uniform(10000, 20000, batch)
    astig = rng.uniform(0, 500, batch)
    return {
        "rot": rot,
        "tilt": tilt,
        "psi": psi,
        "shift_x": shift_x,
        "shift_y": shift_y,
        "defocus_u": defocus + astig / 2,
        "defocus_v": defocus - astig / 2,
        "defocus_angle": rng.uniform(0, 180, batch),
    }


def to_device(p: dict) -> dict:
    import jax.numpy as jnp

    return {k: jnp.asarray(v, dtype=jnp.float32) for k, v in p.items()}


def time_call(fn, args, repeats: int, budget_s: float) -> dict:
    """Compiling warm-up call, then ``repeats`` timed calls (median); stops early, after at least
    3 timed calls, once the timed calls have taken ``budget_s`` seconds (slow paths at large batch)."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times: list[float] = []
    while len(times) < repeats and not (len(times) >= 3 and sum(times) > budget_s):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return {
        "first_call_s": first,
        "times_s": times,
        "repeats": len(times),
        "median_s": statistics.median(times),
    }


def fast_integrator(volume):
    import cryojax.simulator as cxs

    n_spread = cxs.suggest_n_spread(volume, PIXEL_SIZE)  # per-term, 4 sigma (cryoJAX default)
    return cxs.GaussianMixtureProjection(n_spread=n_spread), n_spread


def render_map(volume):
    import cryojax.simulator as cxs
    import jax

    t0 = time.perf_counter()
    render_fn = cxs.AutoVolumeRenderFn(shape=(N, N, N), voxel_size=PIXEL_SIZE)
    map_volume = cxs.render_voxel_volume(
        volume, render_fn, output_type=cxs.FourierVoxelGridVolume, options={"interp": "linear"}
    )
    jax.block_until_ready(map_volume)
    return map_volume, time.perf_counter() - t0


def integrator_for(path: str, volume):
    """(volume representation, integrator, description) of a forward path."""
    import cryojax.simulator as cxs

    if path == "atoms_fast":
        integ, n_spread = fast_integrator(volume)
        desc = (
            "GaussianMixtureVolume (load_tabulated_volume, Peng, no B) + "
            f"GaussianMixtureProjection(n_spread={n_spread}) [suggest_n_spread termwise, cutoff 4 sigma, "
            "sampling_mode='average', pure-JAX spreading]"
        )
        return volume, integ, desc, {}
    if path == "atoms_default":
        desc = (
            "GaussianMixtureVolume (load_tabulated_volume, Peng, no B) + AutoVolumeProjection() "
            "-> GaussianMixtureProjection() [dense erf integrals, n_spread=None, n_batches=1]"
        )
        return volume, cxs.AutoVolumeProjection(), desc, {}
    if path == "map_linear":
        map_volume, render_s = render_map(volume)
        desc = (
            "FourierVoxelGridVolume.from_real_voxel_grid(interp='linear', pad_scale=1) of a 128^3 map at "
            "1.2 A rendered with render_voxel_volume(AutoVolumeRenderFn -> dense GaussianMixtureRenderFn) + "
            "FourierSliceExtraction() [linear]"
        )
        return map_volume, cxs.FourierSliceExtraction(), desc, {"map_render_s": render_s}
    raise ValueError(path)


def run_path(path: str, volume, batch: int, repeats: int, budget_s: float) -> dict:
    import equinox as eqx
    import jax.numpy as jnp

    params = to_device(relion_to_cryojax(**random_relion_params(batch)))
    if path == "grad":
        integ, n_spread = fast_integrator(volume)
        simulate = make_simulate_batch(integ)
        rng = np.random.default_rng(2)
        shifted = np.asarray(volume.positions) + rng.normal(0, 0.5, volume.positions.shape).astype(
            np.float32
        )
        perturbed = eqx.tree_at(lambda v: v.positions, volume, jnp.asarray(shifted))
        clean = np.asarray(simulate(perturbed, params))
        sigma = float(clean.std())
        data = jnp.asarray(clean + rng.normal(0, sigma, clean.shape).astype(np.float32))
        grad_fn = make_grad_fn(integ, sigma**2)
        timing = time_call(grad_fn, (volume.positions, volume, params, data), repeats, budget_s)
        g = grad_fn(volume.positions, volume, params, data)
        assert g.shape == volume.positions.shape and bool(jnp.all(jnp.isfinite(g)))
        method = (
            "jax.grad (w.r.t. GaussianMixtureVolume.positions, all atoms) of sum over batch of "
            "GaussianWhiteNoiseModel(LinearImageModel, variance).log_likelihood(data), atoms_fast path: "
            f"GaussianMixtureProjection(n_spread={n_spread}), spreading custom VJP (pure JAX, no Pallas)"
        )
        extra = {}
    else:
        rep, integ, method, extra = integrator_for(path, volume)
        simulate = make_simulate_batch(integ)
        timing = time_call(simulate, (rep, params), repeats, budget_s)
    return {
        "images_per_s": batch / timing["median_s"],
        "method": method,
        **timing,
        **extra,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def save_images(volume, poses_file: str | None, out: str) -> dict:
    import jax

    if poses_file is None:
        relion = {k: v[:N_SAVED] for k, v in random_relion_params(N_SAVED, seed=123).items()}
    else:
        with np.load(poses_file) as z:
            relion = {
                k: np.asarray(z[k], dtype=np.float64)[:N_SAVED] for k in random_relion_params(1)
            }
    params = to_device(relion_to_cryojax(**relion))
    images = {}
    for path in ("atoms_fast", "atoms_default", "map_linear"):
        rep, integ, _, _ = integrator_for(path, volume)
        for with_ctf, tag in ((False, "noctf"), (True, "ctf")):
            img = make_simulate_batch(integ, with_ctf)(rep, params)
            images[f"{path}_{tag}"] = np.asarray(jax.block_until_ready(img), dtype=np.float32)
    np.savez(out, **images)
    return {"images_out": out, "n_images": int(next(iter(images.values())).shape[0])}


# ------------------------------------------------------------------------------------- main


def _child(args) -> dict:
    import cryojax

    volume = load_volume(pathlib.Path(args.pdb))
    result: dict = {
        "cryojax_version": cryojax.__version__,
        "batch": args.batch,
        "n_atoms": int(volume.positions.shape[0]),
    }
    for path in args.paths:
        if path == "images":
            result["images"] = save_images(volume, args.poses, args.images_out)
        else:
            result[path] = run_path(path, volume, args.batch, args.repeats, args.time_budget)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pdb", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--poses",
        default=None,
        help="npz with rot, tilt, psi, shift_x, shift_y, defocus_u/v, defocus_angle",
    )
    ap.add_argument(
        "--images-out", default=None, help="npz for the first 8 noise-free images of each path"
    )
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=[*PATHS, "images"])
    ap.add_argument(
        "--time-budget",
        type=float,
        default=90.0,
        help="seconds of timed calls per path after which to stop (min 3 calls)",
    )
    ap.add_argument("--no-isolate", action="store_true", help="run all paths in this process")
    args = ap.parse_args(argv)
    if args.images_out and "images" not in args.paths:
        args.paths.append("images")

    import jax

    jax.config.update("jax_enable_x64", False)
    t_start = time.perf_counter()
    if args.no_isolate or len(args.paths) == 1:
        result = _child(args)
    else:
        import cryojax

        result = {"cryojax_version": cryojax.__version__, "batch": args.batch}
        with tempfile.TemporaryDirectory() as tmp:
            for path in args.paths:
                child_out = os.path.join(tmp, f"{path}.json")
                cmd = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--pdb",
                    args.pdb,
                    "--batch",
                    str(args.batch),
                ]
                cmd += ["--repeats", str(args.repeats), "--out", child_out, "--paths", path]
                cmd += ["--time-budget", str(args.time_budget)]
                if path == "images":
                    cmd += ["--images-out", args.images_out] + (
                        ["--poses", args.poses] if args.poses else []
                    )
                subprocess.run(cmd, check=True)
                child = json.loads(pathlib.Path(child_out).read_text())
                result["n_atoms"] = child["n_atoms"]
                result[path] = child[path]
                if path != "images":
                    result[path]["peak_rss_mb"] = child["peak_rss_mb"]
        result["peak_rss_mb"] = max(result[p]["peak_rss_mb"] for p in args.paths if p != "images")
    result["conventions_self_check"] = self_check_conventions()
    result["setup"] = {
        "image": f"{N}x{N}, {PIXEL_SIZE} A/pixel, padded_shape={N}x{N} (cryoJAX default, no padding)",
        "voltage_kv": VOLTAGE_KV,
        "cs_mm": CS_MM,
        "amplitude_contrast": AMPLITUDE_CONTRAST,
        "poses": "uniform SO(3), shifts U(-5,5) A per axis, defocus U(1e4,2e4) A, astigmatism U(0,500) A",
        "batching": "eqx.filter_jit(eqx.filter_vmap(per-particle make_image_model(...).simulate()))",
        "peak_rss": "ru_maxrss of the process running that path (one child process per path)",
        "jax_version": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "wall_s": time.perf_counter() - t_start,
    }
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {
                k: (v["images_per_s"] if isinstance(v, dict) and "images_per_s" in v else v)
                for k, v in result.items()
                if k != "setup"
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
