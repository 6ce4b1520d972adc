"""``cryoensemble reweight``: population weights of a structural ensemble from particle images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli.common import user_errors


def _parse_counts(text: str | None) -> list[float] | None:
    from cryoensemble.errors import InputError

    if text is None:
        return None
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(
            f"--prior-counts: expected numbers separated by commas, got {text!r}"
        ) from None


@user_errors
def reweight(
    structure: Annotated[
        list[Path],
        typer.Option(
            "--structure",
            "-s",
            help="Structure file (PDB/mmCIF; a multi-model file gives all its models; a "
            "trajectory needs --topology). Repeat for every structure.",
        ),
    ],
    particles: Annotated[Path, typer.Option("--particles", "-p", help="Particle STAR file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    likelihood: Annotated[
        str,
        typer.Option(
            help="white (known --noise-sigma) | marginal (scale/offset fitted, variance "
            "marginalised) | colored (whitened with the background PSD, then marginal) | "
            "colored_white"
        ),
    ] = "marginal",
    noise_sigma: Annotated[
        float | None, typer.Option(help="Noise standard deviation (image units), for white.")
    ] = None,
    mask_radius: Annotated[
        float | None,
        typer.Option(help="Circular mask radius in Angstrom (default: all pixels)."),
    ] = None,
    mask_3d: Annotated[
        Path | None,
        typer.Option(help="3-D mask (MRC, particle box and pixel size), projected at each pose."),
    ] = None,
    selection: Annotated[
        str,
        typer.Option(
            help="Atoms imaged: all, heavy, calpha, backbone, chain:A,B (default all, as simulate)."
        ),
    ] = "all",
    allow_different_atoms: Annotated[
        bool, typer.Option(help="Allow structures with different atom counts in the selection.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Particles read and processed at once.")] = 128,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            help="Images formed at once inside a batch (bounds memory; default 1 on CPU, 64 on GPU)."
        ),
    ] = None,
    unknown_poses: Annotated[
        bool,
        typer.Option(
            help="Ignore the STAR file's poses: marginalise each particle's likelihood over a "
            "pose search (SO(3) grid x shifts; see docs/pose_search.md). marginal/white only."
        ),
    ] = False,
    max_shift: Annotated[
        float | None, typer.Option(help="With --unknown-poses: largest shift searched (A).")
    ] = None,
    invert_contrast: Annotated[
        bool, typer.Option(help="Multiply the particle images by -1 (not contrast-inverted).")
    ] = False,
    no_center: Annotated[
        bool, typer.Option("--no-center", help="Keep the files' coordinates (no centring).")
    ] = False,
    align_to: Annotated[
        Path | None,
        typer.Option(help="Reference structure: superpose every structure onto it first."),
    ] = None,
    topology: Annotated[
        Path | None, typer.Option(help="Topology (PDB/mmCIF) for trajectory files.")
    ] = None,
    prior_counts: Annotated[
        str | None,
        typer.Option(help="Dirichlet prior counts per structure, comma-separated (default 0)."),
    ] = None,
    credible_level: Annotated[float, typer.Option(help="Credible interval level.")] = 0.9,
    n_samples: Annotated[int, typer.Option(help="Posterior samples (Gibbs).")] = 2000,
    burn_in: Annotated[int, typer.Option(help="Gibbs iterations discarded.")] = 500,
    heldout_fraction: Annotated[
        float, typer.Option(help="Fraction of particles held out for validation (0: none).")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed (posterior sampling, split).")] = 0,
    pad_factor: Annotated[float, typer.Option(help="Zero-padding factor for the CTF.")] = 2.0,
    no_ctf: Annotated[bool, typer.Option("--no-ctf", help="Do not apply the CTF.")] = False,
    reference_marginal: Annotated[
        bool,
        typer.Option(help="Marginal likelihood as -N log||r|| (drops the det(C^T C) term)."),
    ] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fit the population weights of STRUCTUREs to the PARTICLES (known poses and CTFs).

    Writes weights.json (weights with credible intervals, in the order given), weights.csv,
    likelihood_matrix.npy (+ particle_indices.npy), posterior_samples.npy, weights.png,
    assignments.png and provenance.json.
    """
    from cryoensemble.errors import InputError, check_positive
    from cryoensemble.io._outputs import atomic_output_dir, check_output_target, write_provenance
    from cryoensemble.structure import read_structure
    from cryoensemble.workflows.reweight._reweight import load_structures, write_outputs
    from cryoensemble.workflows.reweight._reweight import reweight as run

    check_output_target(out, overwrite)
    if not 0 < credible_level < 1:
        raise InputError(f"--credible-level must be in (0, 1), got {credible_level}")
    if not 0 <= heldout_fraction < 1:
        raise InputError(f"--heldout-fraction must be in [0, 1), got {heldout_fraction}")
    check_positive("--batch-size", batch_size)
    if chunk_size is not None:
        check_positive("--chunk-size", chunk_size)
    if unknown_poses and (likelihood not in ("marginal", "white") or mask_radius or mask_3d):
        raise InputError("--unknown-poses supports --likelihood marginal or white, without masks")
    if n_samples < 1 or burn_in < 0:
        raise InputError("--n-samples must be >= 1 and --burn-in >= 0")
    if not particles.exists():
        raise InputError(f"{particles}: particle STAR file not found")
    models = load_structures(structure, topology=None if topology is None else str(topology))
    counts = _parse_counts(prior_counts)
    if counts is not None and len(counts) not in (1, len(models)):
        raise InputError(
            f"--prior-counts: {len(counts)} values for {len(models)} structures "
            f"({', '.join(m.name for m in models)})"
        )
    reference = read_structure(align_to) if align_to is not None else None
    result = run(
        particles,
        models,
        likelihood=likelihood,
        noise_sigma=noise_sigma,
        mask_radius=mask_radius,
        mask3d=mask_3d,
        selection=selection,
        center=not no_center,
        align_to=reference,
        require_same_atoms=not allow_different_atoms,
        invert_contrast=invert_contrast,
        apply_ctf=not no_ctf,
        pad_factor=pad_factor,
        batch_size=batch_size,
        chunk_size=chunk_size,
        unknown_poses=unknown_poses,
        max_shift=max_shift,
        exact=not reference_marginal,
        progress=not quiet,
        prior_counts=counts,
        credible_level=credible_level,
        n_samples=n_samples,
        burn_in=burn_in,
        seed=seed,
        heldout_fraction=heldout_fraction or None,
    )
    config = {
        k: v for k, v in locals().items() if k not in ("models", "result", "reference", "run")
    }
    config = {k: v for k, v in config.items() if not callable(v)}
    with atomic_output_dir(out, overwrite) as tmp:
        write_outputs(result, tmp, plots=not no_plots)
        write_provenance(tmp, "reweight", config, seed)
    s = result.summary
    for i, name in enumerate(result.names):
        typer.echo(
            f"{name}: {s['mean'][i]:.4f} [{s['lower'][i]:.4f}, {s['upper'][i]:.4f}] "
            f"(MAP {result.map_weights[i]:.4f})"
        )
    if result.heldout is not None:
        h = result.heldout
        typer.echo(
            f"held-out check: gain over uniform weights per particle {h['train_gain']:.4g} "
            f"(train) vs {h['validation_gain']:.4g} (validation)"
        )
    typer.echo(f"wrote {out}")
