"""``cryoensemble simulate``: a particle dataset (STAR + MRC stacks) from atomic structures."""

from __future__ import annotations

# Expose every CPU core as a JAX device before JAX starts (it reads XLA_FLAGS when its backend is
# first initialised); this module never imports JAX at import time.
from cryoensemble.parallel import configure_host_devices

configure_host_devices()

import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402

from cryoensemble.cli.common import user_errors  # noqa: E402

_OPT = "Options"


def _parse_weights(values: list[str] | None) -> list[float] | None:
    from cryoensemble.errors import ConfigError

    if not values:
        return None
    out = []
    for v in values:
        for part in v.replace(",", " ").split():
            try:
                out.append(float(part))
            except ValueError:
                raise ConfigError(f"--weights: expected numbers, got {part!r}") from None
    return out


def default_output_folder() -> Path:
    """A new folder ``cryoensemble_simulation_<YYYYmmdd-HHMMSS>`` in the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(f"cryoensemble_simulation_{stamp}")
    i = 1
    while out.exists():
        out = Path(f"cryoensemble_simulation_{stamp}_{i}")
        i += 1
    return out


def run_simulation(config, out: Path, overwrite: bool = False, quiet: bool = False):
    """Simulate ``config`` into ``out`` atomically, with a progress bar; returns the summary.

    Everything is written into a temporary folder next to ``out`` that replaces it only when the
    whole dataset is complete; on any error or Ctrl-C nothing is left.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from cryoensemble.io._outputs import atomic_output_dir, check_output_target, write_provenance
    from cryoensemble.workflows.simulate._simulate import simulate_dataset

    class _Rate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- images/s" if speed is None else f"{speed:,.0f} images/s")

    check_output_target(out, overwrite)
    console = Console(stderr=True)
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        with Progress(
            TextColumn("simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
        ) as bar:
            task = bar.add_task("simulate", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = simulate_dataset(config, tmp, progress=progress)
        write_provenance(tmp, "simulate", summary.config, summary.config["seed"])
    summary.folder = out
    summary.star_path = out / summary.star_path.name
    return summary


def print_summary(summary) -> None:
    out = summary.folder
    typer.echo(
        f"simulated {summary.n_particles} particles ({summary.box_size} x {summary.box_size} px, "
        f"{summary.pixel_size:g} A) in {summary.elapsed_s:.1f} s "
        f"({summary.images_per_s:.0f} images/s on {summary.n_devices} device(s))"
    )
    typer.echo(f"  particles:    {out / 'particles.star'}  ({len(summary.stacks)} stack(s))")
    typer.echo(f"  ground truth: {out / 'ground_truth.csv'}")
    typer.echo(f"  config:       {out / 'config.yaml'}  (provenance.json, summary.json)")
    if (out / "gallery.png").exists():
        typer.echo(f"  gallery:      {out / 'gallery.png'}")


@user_errors
def simulate(
    structure: Annotated[
        list[Path] | None,
        typer.Option(
            "--structure",
            "-s",
            help="Structure file (PDB/mmCIF; first model). Repeat for several structures. "
            "Default: the bundled adenylate kinase (adk_open.pdb).",
        ),
    ] = None,
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weights",
            "-w",
            help="Population weight of each structure (repeat, or comma-separated; normalised). "
            "Default: equal.",
        ),
    ] = None,
    n_particles: Annotated[
        int | None, typer.Option(help="Number of particles. [default: 1000]")
    ] = None,
    box_size: Annotated[
        int | None, typer.Option(help="Image side in pixels. [default: 128]")
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel size in Angstrom. [default: 1.2]")
    ] = None,
    voltage: Annotated[
        float | None, typer.Option(help="Acceleration voltage in kV. [default: 300]")
    ] = None,
    cs: Annotated[
        float | None, typer.Option("--cs", help="Spherical aberration in mm. [default: 2.7]")
    ] = None,
    amplitude_contrast: Annotated[
        float | None, typer.Option(help="Amplitude contrast Q0 in [0, 1). [default: 0.1]")
    ] = None,
    defocus_min: Annotated[
        float | None,
        typer.Option(help="Smallest mean defocus in A (positive = underfocus). [default: 10000]"),
    ] = None,
    defocus_max: Annotated[
        float | None, typer.Option(help="Largest mean defocus in A. [default: 20000]")
    ] = None,
    astigmatism_min: Annotated[
        float | None,
        typer.Option(help="Smallest astigmatism DefocusU - DefocusV in A. [default: 0]"),
    ] = None,
    astigmatism_max: Annotated[
        float | None,
        typer.Option(
            help="Largest astigmatism in A; U = d + a/2, V = d - a/2, angle U(0, 180) deg. "
            "[default: 500]"
        ),
    ] = None,
    phase_shift: Annotated[
        float | None, typer.Option(help="Phase-plate phase shift in degrees. [default: 0]")
    ] = None,
    ctf_b_factor: Annotated[
        float | None, typer.Option(help="CTF envelope B-factor in A^2. [default: 0]")
    ] = None,
    shift_max: Annotated[
        float | None,
        typer.Option(help="Origins uniform in [-shift-max, shift-max] A per axis. [default: 5]"),
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            help="none | gaussian (white, at --snr) | poisson (shot noise at --dose). "
            "[default: gaussian]"
        ),
    ] = None,
    snr: Annotated[
        float | None,
        typer.Option(
            help="Signal-to-noise ratio (signal variance inside a disc of --snr-mask-radius px, "
            "over noise variance; one noise level for the dataset). [default: 0.1]"
        ),
    ] = None,
    snr_mask_radius: Annotated[
        float | None,
        typer.Option(help="Radius in pixels of the SNR signal disc. [default: box-size // 2]"),
    ] = None,
    dose: Annotated[
        float | None, typer.Option(help="Electron dose in e/A^2 (for --noise poisson).")
    ] = None,
    pad_factor: Annotated[
        float | None,
        typer.Option(help="Zero-padding factor of the box before the CTF (1 = none). [default: 2]"),
    ] = None,
    no_ctf: Annotated[
        bool | None,
        typer.Option("--no-ctf", help="No CTF: images are the projected potential (x sigma_e)."),
    ] = None,
    selection: Annotated[
        str | None,
        typer.Option(
            help="Atoms imaged: all, heavy (no H), calpha, backbone, chain:A,B. [default: all]"
        ),
    ] = None,
    use_b_factors: Annotated[
        bool | None,
        typer.Option("--use-b-factors", help="Blur each atom by its B-factor from the file."),
    ] = None,
    b_factor: Annotated[
        float | None,
        typer.Option(help="Global B-factor in A^2 added to every atom. [default: 0]"),
    ] = None,
    no_center: Annotated[
        bool | None,
        typer.Option(
            "--no-center",
            help="Keep the files' coordinates: their origin at pixel N//2 (default: each "
            "structure's centre of mass at N//2).",
        ),
    ] = None,
    center_on_first: Annotated[
        bool | None,
        typer.Option(
            "--center-on-first",
            help="Centre every structure on the first structure's centre of mass (common frame).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed. [default: 0]")] = None,
    from_star: Annotated[
        Path | None,
        typer.Option(
            help="Particle STAR file: simulate at its poses, origins, CTF and optics (box and "
            "pixel size from it); the structure(s) stand for its particles."
        ),
    ] = None,
    no_check_stacks: Annotated[
        bool | None,
        typer.Option("--no-check-stacks", help="With --from-star: do not check its image stacks."),
    ] = None,
    stack_size: Annotated[
        int | None, typer.Option(help="Images per MRC stack file. [default: 10000]")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Particles simulated at once (memory). [default: 512]")
    ] = None,
    no_gallery: Annotated[
        bool | None, typer.Option("--no-gallery", help="Do not write gallery.png.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML or TOML file with any of these options (snake_case names, e.g. "
            "n_particles, spherical_aberration); flags given on the command line win."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output folder (must not exist unless --overwrite). Default: a new "
            "cryoensemble_simulation_<time> folder here.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Simulate cryo-EM particle images (RELION STAR + MRC stacks) from atomic structures.

    Images are the dimensionless phase contrast (interaction constant x CTF-filtered projected
    potential), protein bright. With no arguments: 1000 particles of the bundled adenylate kinase.
    """
    from cryoensemble.io._outputs import check_output_target
    from cryoensemble.workflows.simulate._simulate import load_config

    overrides: dict[str, Any] = {
        "structures": list(structure) if structure else None,
        "weights": _parse_weights(weights),
        "n_particles": n_particles,
        "box_size": box_size,
        "pixel_size": pixel_size,
        "voltage": voltage,
        "spherical_aberration": cs,
        "amplitude_contrast": amplitude_contrast,
        "defocus_min": defocus_min,
        "defocus_max": defocus_max,
        "astigmatism_min": astigmatism_min,
        "astigmatism_max": astigmatism_max,
        "phase_shift": phase_shift,
        "ctf_b_factor": ctf_b_factor,
        "shift_max": shift_max,
        "noise": noise,
        "snr": snr,
        "snr_mask_radius": snr_mask_radius,
        "dose": dose,
        "pad_factor": pad_factor,
        "apply_ctf": False if no_ctf else None,
        "selection": selection,
        "use_b_factors": True if use_b_factors else None,
        "b_factor": b_factor,
        "center": "none" if no_center else ("first" if center_on_first else None),
        "seed": seed,
        "from_star": from_star,
        "check_stacks": False if no_check_stacks else None,
        "stack_size": stack_size,
        "batch_size": batch_size,
        "gallery": False if no_gallery else None,
    }
    if no_center and center_on_first:
        from cryoensemble.errors import ConfigError

        raise ConfigError("--no-center and --center-on-first exclude each other")
    cfg = load_config(config, **overrides)
    out = default_output_folder() if out is None else out
    check_output_target(out, overwrite)
    summary = run_simulation(cfg, out, overwrite=overwrite, quiet=quiet)
    print_summary(summary)
