"""``cryoensemble render``: an atomic model as an MRC map (a reference for other programs)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cryoensemble.cli.common import user_errors


@user_errors
def render(
    structure: Annotated[Path, typer.Argument(help="Structure file (PDB/mmCIF).")],
    box_size: Annotated[int, typer.Option(help="Map side in voxels.")],
    pixel_size: Annotated[float, typer.Option(help="Voxel size in Angstrom.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output map (.mrc).")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    no_center: Annotated[
        bool,
        typer.Option(
            "--no-center",
            help="Keep the file's coordinates, origin at voxel N//2 (default: the centre of "
            "mass of all atoms at voxel N//2, as cryoensemble simulate).",
        ),
    ] = False,
    model: Annotated[int, typer.Option(help="Model index (0-based) in multi-model files.")] = 0,
    selection: Annotated[
        str, typer.Option(help="Atoms rendered: all, heavy, calpha, backbone, chain:A,B.")
    ] = "all",
    use_b_factors: Annotated[
        bool, typer.Option("--use-b-factors", help="Blur each atom by its B-factor from the file.")
    ] = False,
    b_factor: Annotated[
        float, typer.Option(help="Global B-factor in A^2 added to every atom (>= 0).")
    ] = 0.0,
    lowpass: Annotated[
        float | None,
        typer.Option(help="Low-pass to this resolution in Angstrom (raised-cosine edge)."),
    ] = None,
) -> None:
    """Render an atomic model into a map of voxel-averaged potential (Volts), MRC float32.

    The map is [z, y, x] with the model placed exactly as ``cryoensemble simulate`` places it.
    """
    from cryoensemble.errors import InputError, check_positive
    from cryoensemble.io import write_map
    from cryoensemble.io._outputs import atomic_output_file, check_output_target, write_provenance
    from cryoensemble.structure import read_structure
    from cryoensemble.workflows.simulate._simulate import reference_map

    check_output_target(out, overwrite)
    if box_size < 2:
        raise InputError(f"--box-size must be >= 2 voxels, got {box_size}")
    check_positive("--pixel-size (Angstrom)", pixel_size)
    if b_factor < 0:
        raise InputError(f"--b-factor must be >= 0 A^2, got {b_factor}")
    if lowpass is not None:
        check_positive("--lowpass (Angstrom)", lowpass)
    atomic = read_structure(structure, model_index=model)
    volume = reference_map(
        atomic,
        box_size,
        pixel_size,
        center=not no_center,
        selection=selection,
        use_b_factors=use_b_factors,
        b_factor=b_factor,
        lowpass=lowpass,
    )
    config = {
        "structure": str(structure.absolute()),
        "model": model,
        "box_size": box_size,
        "pixel_size": pixel_size,
        "center": not no_center,
        "selection": selection,
        "use_b_factors": use_b_factors,
        "b_factor": b_factor,
        "lowpass": lowpass,
    }
    with atomic_output_file(out, overwrite=overwrite) as tmp:
        write_map(tmp, volume, pixel_size, overwrite=True)
    # provenance next to the map: MAP.mrc.provenance.json
    prov = out.with_name(out.name + ".provenance.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.prov-") as d:
        os.replace(write_provenance(Path(d), "render", config, None), prov)
    typer.echo(
        f"wrote {out} ({box_size}^3 voxels of {pixel_size:g} A, {atomic.n_atoms} atoms, "
        f"min {volume.min():.4g}, max {volume.max():.4g} V)"
    )
