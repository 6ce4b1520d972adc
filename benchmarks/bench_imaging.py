"""Image-formation benchmark: cryoensemble against cryoJAX 0.6.0, measured in one run.

Case (issue 2): adenylate kinase open (3341 atoms, Peng factors, no B-factors), 128 x 128 images at
1.2 A/pixel, 300 kV, defocus uniform 1-2 um, astigmatism up to 500 A, Cs 2.7 mm, amplitude
contrast 0.1, uniform random rotations, shifts up to 5 A, float32, batches of 64 and 512.

Figures: images/s (median of repeats after compilation) for the atom path forward, the gradient of a
Gaussian log-likelihood with respect to all atom positions, and Fourier-slice projection of a
128^3 map (linear and cubic); peak RSS; and accuracy: relative L2 error of the noise-free projected
potential against a float64 reference with exact pixel integration and no truncation (after the
best least-squares scale, so that unit conventions do not matter).

Each configuration runs in its own process (the CPU device count must be set before JAX starts):
ours on one device, ours over all cores as host devices, and cryoJAX from its own environment
(``.venv-peers``, ``pip install cryojax==0.6.0``; never a dependency of the package).

    .venv/bin/python benchmarks/bench_imaging.py [--batches 64 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PDB = ROOT / "src" / "cryoensemble" / "data" / "adk_open.pdb"
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
N, PIXEL = 128, 1.2


def draw_poses(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The benchmark's particle parameters (RELION conventions)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    mats = Rotation.random(n, random_state=seed).as_matrix()
    # RELION's A = Rz(-psi) Ry(-tilt) Rz(-rot) = (Rz(rot) Ry(tilt) Rz(psi))^T: intrinsic ZYZ of A^T.
    rot, tilt, psi = (
        Rotation.from_matrix(np.transpose(mats, (0, 2, 1))).as_euler("ZYZ", degrees=True).T
    )
    u = rng.uniform(10000, 20000, n)
    return {
        "rot": rot,
        "tilt": tilt,
        "psi": psi,
        "shift_x": rng.uniform(-5, 5, n),
        "shift_y": rng.uniform(-5, 5, n),
        "defocus_u": u,
        "defocus_v": u - rng.uniform(0, 500, n),
        "defocus_angle": rng.uniform(0, 180, n),
    }


def _timed(fn, repeats: int) -> float:
    fn()  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def worker(batch: int, repeats: int, poses_file: str | None, images_out: str | None) -> dict:
    """Our figures in this process (device count already fixed by XLA_FLAGS)."""
    import resource

    import jax
    import jax.numpy as jnp

    from cryoensemble.imaging import ImagingConfig, simulate_images
    from cryoensemble.optics import CTFParams
    from cryoensemble.parallel import particle_mesh
    from cryoensemble.pose import euler_to_matrix
    from cryoensemble.projection import (
        prepare_map_projection,
        project_atoms,
        project_map,
        render_map,
    )
    from cryoensemble.scattering import gaussian_atoms
    from cryoensemble.structure import read_structure

    model = read_structure(PDB)
    atoms = gaussian_atoms(model, center=model.center_of_mass())
    p = draw_poses(batch)
    rots = euler_to_matrix(
        jnp.asarray(p["rot"]), jnp.asarray(p["tilt"]), jnp.asarray(p["psi"])
    ).astype(jnp.float32)
    origins = jnp.asarray(np.stack([p["shift_x"], p["shift_y"]], -1), jnp.float32)
    ctf = CTFParams(
        defocus_u=p["defocus_u"], defocus_v=p["defocus_v"], defocus_angle=p["defocus_angle"]
    )
    config = ImagingConfig.for_atoms(atoms, N, PIXEL)
    mesh = particle_mesh() if jax.device_count() > 1 else None
    out = {"devices": jax.device_count(), "batch": batch, "half_width": config.half_width}

    forward = jax.jit(lambda a, r, o, c: simulate_images(a, r, o, c, config, mesh=mesh))
    out["atoms_forward"] = batch / _timed(
        lambda: forward(atoms, rots, origins, ctf).block_until_ready(), repeats
    )

    data = forward(atoms, rots, origins, ctf) + 0.1 * jax.random.normal(
        jax.random.PRNGKey(0), (batch, N, N)
    )

    def loglik(pos):
        sim = simulate_images(atoms.with_positions(pos), rots, origins, ctf, config, mesh=mesh)
        return -0.5 * jnp.sum((sim - data) ** 2) / 0.1**2

    grad = jax.jit(jax.grad(loglik))
    out["atoms_grad"] = batch / _timed(lambda: grad(atoms.positions).block_until_ready(), repeats)

    volume = render_map(atoms, N, PIXEL)
    # Maps: the volume's transform oversampled 2x (default) or not ("vol1"; gridding-corrected
    # linear, like-for-like in memory with cryoJAX's unpadded linear); CTF padding 1 or 2.
    projectors = {i: prepare_map_projection(volume, PIXEL, 2.0, i) for i in ("linear", "cubic")}
    projectors["linear_vol1"] = prepare_map_projection(volume, PIXEL, 1.0, "linear")
    for (name, proj), pad in itertools.product(projectors.items(), (1.0, 2.0)):
        cfg = ImagingConfig(box_size=N, pixel_size=PIXEL, pad_factor=pad)
        f = jax.jit(lambda pr, r, o, c, cfg=cfg: simulate_images(pr, r, o, c, cfg, mesh=mesh))
        run = lambda f=f, proj=proj: f(proj, rots, origins, ctf).block_until_ready()
        out[f"map_{name}_pad{pad:g}"] = batch / _timed(run, repeats)

    if poses_file and images_out:
        q = dict(np.load(poses_file))
        r8 = euler_to_matrix(
            jnp.asarray(q["rot"]), jnp.asarray(q["tilt"]), jnp.asarray(q["psi"])
        ).astype(jnp.float32)
        o8 = jnp.asarray(np.stack([q["shift_x"], q["shift_y"]], -1), jnp.float32)
        ours = jax.vmap(lambda r, o: project_atoms(atoms, r, o, N, PIXEL, config.half_width))(
            r8, o8
        )
        maps = {
            f"map_{i}": np.asarray(
                jax.vmap(lambda r, o, pr=pr: project_map(pr, r, o, N, grid=N))(r8, o8)
            )
            for i, pr in projectors.items()
        }
        np.savez(images_out, atoms=np.asarray(ours), **maps)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def reference_images(poses: dict[str, np.ndarray]) -> np.ndarray:
    """Float64 projected potentials, exact pixel integration, no truncation (wide window)."""
    import jax

    with jax.enable_x64(True):
        import jax.numpy as jnp

        from cryoensemble.pose import euler_to_matrix
        from cryoensemble.projection import project_atoms
        from cryoensemble.scattering import gaussian_atoms
        from cryoensemble.structure import read_structure

        model = read_structure(PDB)
        atoms = gaussian_atoms(model, center=model.center_of_mass(), dtype=jnp.float64)
        rots = euler_to_matrix(
            *(jnp.asarray(poses[k], jnp.float64) for k in ("rot", "tilt", "psi"))
        )
        origins = jnp.asarray(np.stack([poses["shift_x"], poses["shift_y"]], -1))
        f = jax.jit(jax.vmap(lambda r, o: project_atoms(atoms, r, o, N, PIXEL, 8)))
        return np.asarray(f(rots, origins))


def map_interpolation_errors(poses: dict[str, np.ndarray]) -> dict[str, float]:
    """Interpolation error alone: Fourier-slice projections of one rendered map against the same
    map projected with cubic interpolation on a 3x oversampled transform (a near-exact slice)."""
    import jax
    import jax.numpy as jnp

    from cryoensemble.pose import euler_to_matrix
    from cryoensemble.projection import prepare_map_projection, project_map, render_map
    from cryoensemble.scattering import gaussian_atoms
    from cryoensemble.structure import read_structure

    model = read_structure(PDB)
    volume = render_map(gaussian_atoms(model, center=model.center_of_mass()), N, PIXEL)
    rots = euler_to_matrix(*(jnp.asarray(poses[k], jnp.float32) for k in ("rot", "tilt", "psi")))
    origins = jnp.asarray(np.stack([poses["shift_x"], poses["shift_y"]], -1), jnp.float32)

    def images(pad, interp, gridding):
        proj = prepare_map_projection(volume, PIXEL, pad, interp, gridding_correction=gridding)
        f = jax.jit(jax.vmap(lambda r, o: project_map(proj, r, o, N, grid=N)))
        return np.asarray(f(rots, origins), np.float64)

    ref = images(3.0, "cubic", True)
    cases = {
        "linear, x1, no gridding correction (cryoJAX's algorithm)": (1.0, "linear", False),
        "linear, x1, gridding-corrected (ours, fast)": (1.0, "linear", True),
        "linear, x2, gridding-corrected (ours, default linear)": (2.0, "linear", True),
        "cubic, x2, gridding-corrected (ours)": (2.0, "cubic", True),
    }
    return {name: relative_error(images(*case), ref) for name, case in cases.items()}


def relative_error(images: np.ndarray, ref: np.ndarray) -> float:
    """Median over images of ||s x - ref|| / ||ref|| with the least-squares scale s."""
    errs = []
    for x, r in zip(images.astype(np.float64), ref, strict=True):
        s = np.vdot(x, r) / np.vdot(x, x)
        errs.append(np.linalg.norm(s * x - r) / np.linalg.norm(r))
    return float(np.median(errs))


def _run_json(cmd: list[str], env: dict | None = None) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        res = subprocess.run(
            [*cmd, "--out", str(out)], env=env, cwd=ROOT, capture_output=True, text=True
        )
        if res.returncode != 0 or not out.exists():
            print(f"  [failed: {' '.join(cmd[:2])}]\n{res.stderr[-2000:]}", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-peer", action="store_true", help="skip cryoJAX")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--poses", help=argparse.SUPPRESS)
    ap.add_argument("--images-out", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        Path(args.out).write_text(
            json.dumps(worker(args.batch, args.repeats, args.poses, args.images_out))
        )
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_imaging_"))
    poses8 = {k: v[:8] for k, v in draw_poses(8, seed=123).items()}
    np.savez(tmp / "poses.npz", **poses8)
    me = [
        sys.executable,
        __file__,
        "--worker",
        "--repeats",
        str(args.repeats),
        "--poses",
        str(tmp / "poses.npz"),
    ]
    peer = PEERS_PY.exists() and not args.no_peer
    rows = []
    for batch in args.batches:
        ours = {}
        for devices in [1, os.cpu_count() or 1]:
            env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
            cmd = [*me, "--batch", str(batch), "--images-out", str(tmp / "ours.npz")]
            ours[devices] = _run_json(cmd, env)
        theirs = None
        if peer:
            theirs = _run_json(
                [
                    str(PEERS_PY),
                    str(ROOT / "benchmarks/peers/cryojax_imaging.py"),
                    "--pdb",
                    str(PDB),
                    "--batch",
                    str(batch),
                    "--repeats",
                    str(args.repeats),
                    "--poses",
                    str(tmp / "poses.npz"),
                    "--images-out",
                    str(tmp / "cryojax.npz"),
                ]
            )
        rows.append((batch, ours, theirs))

    ref = reference_images(poses8)
    mine = np.load(tmp / "ours.npz")
    acc = {"ours atoms (float32, default truncation)": relative_error(mine["atoms"], ref)}
    for name in ("linear", "cubic", "linear_vol1"):
        acc[f"ours map {name} (gridding-corrected)"] = relative_error(mine[f"map_{name}"], ref)
    if (tmp / "cryojax.npz").exists():
        cj = np.load(tmp / "cryojax.npz")
        for key in ["atoms_fast_noctf", "atoms_default_noctf", "map_linear_noctf"]:
            if key in cj:
                acc[f"cryoJAX {key}"] = relative_error(cj[key], ref)

    print(f"\nadenylate kinase, {N}x{N} at {PIXEL} A, CTF with padding 2 (ours), float32; images/s")
    for batch, ours, theirs in rows:
        print(f"\nbatch {batch}")
        print(
            f"{'':28s}{'ours 1 dev':>12s}{'ours all':>12s}{'cryoJAX':>12s}{'ratio 1dev':>12s}{'ratio all':>12s}"
        )
        pairs = [
            ("atoms forward", "atoms_forward", "atoms_fast"),
            ("atoms forward vs default", "atoms_forward", "atoms_default"),
            ("gradient", "atoms_grad", "grad"),
            ("map linear, CTF pad 1", "map_linear_pad1", "map_linear"),
            ("map cubic, CTF pad 1", "map_cubic_pad1", "map_linear"),
            ("map linear, CTF pad 2", "map_linear_pad2", "map_linear"),
            ("map cubic, CTF pad 2", "map_cubic_pad2", "map_linear"),
            ("map linear vol x1, CTF pad 1", "map_linear_vol1_pad1", "map_linear"),
        ]
        for label, k_ours, k_peer in pairs:
            a = (ours.get(1) or {}).get(k_ours, float("nan"))
            b = (ours.get(max(ours)) or {}).get(k_ours, float("nan"))
            c = ((theirs or {}).get(k_peer) or {}).get("images_per_s", float("nan"))
            print(f"{label:28s}{a:12.0f}{b:12.0f}{c:12.0f}{a / c:12.2f}{b / c:12.2f}")
        mem = [f"ours {d} dev {o['peak_rss_mb']:.0f} MB" for d, o in ours.items() if o]
        if theirs:
            mem.append(f"cryoJAX {theirs.get('peak_rss_mb', float('nan')):.0f} MB")
        print("peak RSS (whole process): " + ", ".join(mem))
    print(
        "\naccuracy: median relative L2 error of the projected potential vs exact float64 reference"
    )
    for k, v in acc.items():
        print(f"  {k:45s} {v:.2e}")


if __name__ == "__main__":
    main()
