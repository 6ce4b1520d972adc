"""``cryoensemble poses``: estimate particle poses by searching an SO(3) grid x shifts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli.common import user_errors

MAP_SUFFIXES = {".mrc", ".map", ".mrcs", ".ccp4"}


def _load_references(paths, selection: str, center: bool, box: int, pixel: float):
    """(names, sources, structures): maps (MRC) as volumes, atomic models as Gaussian atoms."""
    from cryoensemble.errors import InputError
    from cryoensemble.io import read_map
    from cryoensemble.workflows.reweight._reweight import load_structures, prepare_atoms

    names, sources, refs = [], [], []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"{path}: structure file not found")
        if path.suffix.lower() in MAP_SUFFIXES:
            vol, voxel = read_map(path)
            if vol.shape != (box, box, box):
                raise InputError(
                    f"{path}: the map is {vol.shape} voxels but the particles are {box} pixels"
                )
            if abs(float(voxel) - pixel) > 1e-3 * pixel:
                raise InputError(
                    f"{path}: the map has {float(voxel):g} A voxels but the particles {pixel:g} A"
                )
            names.append(path.stem)
            sources.append(str(path))
            refs.append(vol)
            continue
        models = load_structures([path])
        atoms, _ = prepare_atoms(models, selection, center, require_same_atoms=False)
        names += [m.name for m in models]
        sources += [m.source for m in models]
        refs += atoms
    return names, sources, refs


@user_errors
def poses(
    particles: Annotated[Path, typer.Option("--particles", "-p", help="Particle STAR file.")],
    structure: Annotated[
        list[Path],
        typer.Option(
            "--structure",
            "-s",
            help="Structure (PDB/mmCIF; a multi-model file gives all its models) or map (MRC, "
            "the particles' box and pixel size). Repeat for several.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    base_level: Annotated[
        int,
        typer.Option(
            help="Global Hopf grid level: 0 (72 rotations, 60 deg), 1 (576, 30), 2 (4608, 15), "
            "3 (36864, 7.5)."
        ),
    ] = 2,
    n_refine: Annotated[
        int, typer.Option(help="Local refinement levels, each halving the spacing.")
    ] = 2,
    candidates: Annotated[
        int, typer.Option(help="Cells refined per particle and level (8 children each).")
    ] = 8,
    max_shift: Annotated[
        float | None,
        typer.Option(help="Shift search radius in Angstrom (default: 10 % of the box)."),
    ] = None,
    shift_sigma: Annotated[
        float | None,
        typer.Option(help="Gaussian shift prior sd in Angstrom (default: uniform in the disc)."),
    ] = None,
    likelihood: Annotated[
        str, typer.Option(help="marginal (scale/offset fitted) | white (needs --noise-sigma).")
    ] = "marginal",
    noise_sigma: Annotated[
        float | None, typer.Option(help="Noise standard deviation (image units), for white.")
    ] = None,
    pad_factor: Annotated[
        float, typer.Option(help="Template zero-padding for the CTF (1: faster, circular).")
    ] = 2.0,
    interpolation: Annotated[
        str, typer.Option(help="Fourier-slice interpolation: linear | cubic.")
    ] = "linear",
    coarse_box: Annotated[
        int | None,
        typer.Option(
            help="Frequency marching: box (pixels) the images are Fourier-cropped to on the base "
            "level, doubled per refinement level; the last level uses the full box (or "
            "--band-limit). 0: no cropping."
        ),
    ] = 32,
    band_limit: Annotated[
        float | None,
        typer.Option(help="Resolution (A) of the final level (default: the full images)."),
    ] = None,
    no_ctf: Annotated[bool, typer.Option("--no-ctf", help="Do not apply the CTF.")] = False,
    no_subpixel: Annotated[
        bool, typer.Option("--no-subpixel", help="Integer shifts only on refinement levels.")
    ] = False,
    invert_contrast: Annotated[
        bool, typer.Option(help="Multiply the particle images by -1 (not contrast-inverted).")
    ] = False,
    selection: Annotated[
        str, typer.Option(help="Atoms imaged: all, heavy, calpha, backbone, chain:A,B.")
    ] = "all",
    no_center: Annotated[
        bool, typer.Option("--no-center", help="Keep the files' coordinates (no centring).")
    ] = False,
    truth: Annotated[
        str,
        typer.Option(
            help="Ground truth for the angular errors: auto (the input's rlnAngle* when present "
            "and not all zero) | input | none."
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None, typer.Option(help="Particles searched at once (default: 8 CPU, 64 GPU).")
    ] = None,
    rotation_chunk: Annotated[
        int | None, typer.Option(help="Rotations per chunk of the global level (memory).")
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Estimate the pose of every particle against the STRUCTUREs (poses in the file are ignored).

    Writes DIR/particles.star (the input with rlnAngleRot/Tilt/Psi and rlnOriginX/YAngst
    replaced by the estimates for each particle's most likely structure, absolute image paths,
    cryoensemblePoseLogLikelihood, cryoensemblePoseMarginalLogLikelihood,
    cryoensemblePoseStructureIndex), report.json, angular_distribution.png, the
    pose-marginalised likelihood matrix (likelihood_matrix.npy, particle_indices.npy,
    likelihood_matrix.json) and provenance.json; with ground truth also angular_error.png and
    the error statistics.
    """
    import json

    import numpy as np

    from cryoensemble.inference import fit_weights_em, save_likelihood_matrix
    from cryoensemble.io import ParticleDataset, write_particles
    from cryoensemble.io._outputs import atomic_output_dir, check_output_target, write_provenance
    from cryoensemble.pose._grids import grid_resolution, hopf_grid
    from cryoensemble.posesearch._search import (
        PoseSearchConfig,
        error_summary,
        input_poses_as_truth,
        plot_angular_distribution,
        plot_angular_error,
        pose_search,
        poses_table,
    )

    check_output_target(out, overwrite)
    cfg = PoseSearchConfig(
        base_level=base_level,
        n_refine=n_refine,
        n_candidates=candidates,
        max_shift=max_shift,
        shift_sigma=shift_sigma,
        kind=likelihood,
        sigma=noise_sigma,
        pad_factor=pad_factor,
        coarse_box=coarse_box or None,
        band_limit=band_limit,
        interpolation=interpolation,
        apply_ctf=not no_ctf,
        subpixel=not no_subpixel,
        particle_batch=batch_size,
        rotation_chunk=rotation_chunk,
    )
    ds = ParticleDataset(particles, invert_contrast=invert_contrast)
    use_truth = input_poses_as_truth(ds.table, truth)
    names, sources, refs = _load_references(
        structure, selection, not no_center, ds.box_size, ds.pixel_size
    )
    result = pose_search(ds, refs, cfg, progress=not quiet)
    optics, table = poses_table(ds.table, result, names, use_truth)
    best = result.best()
    # measured resolution of the levels (nearest neighbours on the grid, covering radius)
    measured = []
    for lv in cfg.levels():
        if lv["n_rotations"] <= 40000:
            measured.append({**lv, **grid_resolution(hopf_grid(lv["level"]), n_samples=2000)})
        else:
            measured.append(lv)
    report = {
        "particles": str(ds.star_path),
        "n_particles": int(len(result.indices)),
        "box_size": ds.box_size,
        "pixel_size": ds.pixel_size,
        "structures": sources,
        "names": names,
        "search": result.info,
        "grid_levels": measured,
        "structure_counts": np.bincount(best["structure"], minlength=len(names)).tolist(),
        "median_log_likelihood": float(np.median(best["log_likelihood"])),
        "ground_truth": "input rlnAngle*/rlnOrigin*" if use_truth else None,
    }
    if len(names) > 1:
        w, _, _ = fit_weights_em(result.marginal_log_likelihood)
        report["weights_pose_marginalised"] = w.tolist()
    if use_truth:
        err = table["cryoensembleAngularError"].to_numpy(np.float64)
        report["angular_error"] = error_summary(err)
        dx = table["rlnOriginXAngst"] - table["cryoensembleInputOriginXAngst"]
        dy = table["rlnOriginYAngst"] - table["cryoensembleInputOriginYAngst"]
        report["shift_error_median_angstrom"] = float(np.median(np.hypot(dx, dy)))
    with atomic_output_dir(out, overwrite) as tmp:
        write_particles(tmp / "particles.star", (optics, table))
        save_likelihood_matrix(
            tmp,
            result.marginal_log_likelihood,
            result.indices,
            {"kind": f"pose-marginalised {cfg.kind}", "names": names, "structures": sources},
        )
        if not no_plots:
            plot_angular_distribution(best["euler"], tmp / "angular_distribution.png")
            if use_truth:
                plot_angular_error(err, cfg.final_resolution, tmp / "angular_error.png")
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        write_provenance(
            tmp,
            "poses",
            {
                **{k: v for k, v in vars(cfg).items()},
                "particles": str(particles),
                "structures": [str(s) for s in structure],
                "selection": selection,
                "center": not no_center,
                "invert_contrast": invert_contrast,
                "truth": truth,
            },
            seed=None,
        )
    if not quiet:
        typer.echo(f"poses of {len(result.indices)} particles written to {out / 'particles.star'}")
        if use_truth:
            a = report["angular_error"]
            typer.echo(
                f"  angular error: median {a['median_deg']:.2f} deg, 90th percentile "
                f"{a['p90_deg']:.2f} deg (final grid spacing {cfg.final_resolution:g} deg)"
            )
