"""Check that cryoJAX images from ``cryojax_imaging.py`` match cryoensemble's conventions.

Run in the *main* environment, after the peer script has written ``--images-out``::

    .venv/bin/python benchmarks/peers/check_conventions.py --pdb src/cryoensemble/data/adk_open.pdb \
        --poses poses.npz --images images.npz [--out check.json]

For each saved cryoJAX image (atoms_fast, atoms_default, map_linear; without and with CTF) this
computes cryoensemble's image for the same RELION pose (``project_atoms`` of Peng Gaussian atoms,
centred at the mass-weighted centre; ``apply_ctf`` without padding, as cryoJAX by default) and
reports the Pearson correlation after a hard low-pass at 1/(4 A) (and unfiltered), plus the
least-squares scale ours ~ scale * cryoJAX. Correlation > 0.99 means the conventions match.
Expected: scale ~ +47.88 without CTF (cryoJAX's amplitudes are Peng's a_i in A, ours are in V A^3)
and correlation ~ -1 with CTF (cryoJAX's CTF is +sin(chi - w), RELION's -sin(chi - w)).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax.numpy as jnp
import numpy as np

from cryoensemble.optics import CTFParams, apply_ctf
from cryoensemble.pose import euler_to_matrix
from cryoensemble.projection import default_half_width, project_atoms
from cryoensemble.scattering import gaussian_atoms
from cryoensemble.structure import read_structure

PIXEL_SIZE = 1.2
LOWPASS_A = 4.0
PATHS = ("atoms_fast", "atoms_default", "map_linear")


def lowpass(img: np.ndarray, pixel_size: float, resolution: float) -> np.ndarray:
    n = img.shape[-1]
    ky = np.fft.fftfreq(n, d=pixel_size)[:, None]
    kx = np.fft.rfftfreq(n, d=pixel_size)[None, :]
    keep = (kx**2 + ky**2) <= (1.0 / resolution) ** 2
    return np.fft.irfft2(np.fft.rfft2(img) * keep, s=img.shape[-2:])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def our_images(pdb: str, poses: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    model = read_structure(pdb)
    atoms = gaussian_atoms(model, center=model.center_of_mass())
    hw = default_half_width(atoms, PIXEL_SIZE)
    noctf, ctf = [], []
    for i in range(len(poses["rot"])):
        rot = euler_to_matrix(poses["rot"][i], poses["tilt"][i], poses["psi"][i])
        origin = jnp.asarray([poses["shift_x"][i], poses["shift_y"][i]], jnp.float32)
        img = project_atoms(atoms, rot, origin, n, PIXEL_SIZE, hw)
        params = CTFParams(
            defocus_u=poses["defocus_u"][i],
            defocus_v=poses["defocus_v"][i],
            defocus_angle=poses["defocus_angle"][i],
            voltage=300.0,
            spherical_aberration=2.7,
            amplitude_contrast=0.1,
        )
        noctf.append(np.asarray(img))
        ctf.append(np.asarray(apply_ctf(img, params, PIXEL_SIZE, pad_factor=1.0)))
    return np.stack(noctf), np.stack(ctf)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pdb", required=True)
    ap.add_argument("--poses", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    theirs = dict(np.load(args.images))
    n_img, n = next(iter(theirs.values())).shape[:2]
    with np.load(args.poses) as z:
        poses = {k: np.asarray(z[k], dtype=np.float64)[:n_img] for k in z.files}
    ours = dict(zip(("noctf", "ctf"), our_images(args.pdb, poses, n), strict=True))

    report: dict = {}
    print(
        f"{'image set':24s} {'corr (lowpass 4 A) per image':60s} {'min':>7s} {'raw min':>8s} {'scale':>8s}"
    )
    for path in PATHS:
        for tag in ("noctf", "ctf"):
            key = f"{path}_{tag}"
            if key not in theirs:
                continue
            t, o = theirs[key].astype(np.float64), ours[tag].astype(np.float64)
            corr_lp = [
                pearson(lowpass(t[i], PIXEL_SIZE, LOWPASS_A), lowpass(o[i], PIXEL_SIZE, LOWPASS_A))
                for i in range(n_img)
            ]
            corr_raw = [pearson(t[i], o[i]) for i in range(n_img)]
            scale = float((t * o).sum() / (t * t).sum())
            report[key] = {
                "corr_lowpass4A": corr_lp,
                "corr_raw": corr_raw,
                "scale_ours_over_cryojax": scale,
            }
            extreme = min(corr_lp, key=abs)
            print(
                f"{key:24s} {' '.join(f'{c:+.4f}' for c in corr_lp):60s} {extreme:+.4f} {min(corr_raw, key=abs):+8.4f} {scale:8.3f}"
            )
    # cryoJAX paths against each other (raw, no filtering): accuracy of its fast and map paths.
    for a, b in (("atoms_fast", "atoms_default"), ("map_linear", "atoms_default")):
        ka, kb = f"{a}_noctf", f"{b}_noctf"
        if ka in theirs and kb in theirs:
            ta, tb = theirs[ka].astype(np.float64), theirs[kb].astype(np.float64)
            rel = float(np.linalg.norm(ta - tb) / np.linalg.norm(tb))
            report[f"{a}_vs_{b}_noctf_rel_l2"] = rel
            print(f"cryoJAX {a} vs {b} (no CTF): relative L2 difference {rel:.2e}")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
