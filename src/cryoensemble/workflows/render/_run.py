"""``cryoensemble render``'s job: read the structure, render the map, write it atomically with its
provenance next to it (``MAP.mrc.provenance.json``)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from cryoensemble.io import write_map
from cryoensemble.io._outputs import atomic_output_file, check_output_target, write_provenance
from cryoensemble.structure import read_structure
from cryoensemble.workflows.render._config import RenderConfig
from cryoensemble.workflows.render._map import reference_map

__all__ = ["RenderSummary", "run"]


@dataclasses.dataclass(frozen=True)
class RenderSummary:
    """What :func:`run` wrote: the map file, its size, the atoms rendered and the value range (V)."""

    path: Path
    box_size: int
    voxel_size: float
    n_atoms: int
    minimum: float
    maximum: float

    def describe(self) -> str:
        """One line for the terminal."""
        return (
            f"wrote {self.path} ({self.box_size}^3 voxels of {self.voxel_size:g} A, "
            f"{self.n_atoms} atoms, min {self.minimum:.4g}, max {self.maximum:.4g} V)"
        )


def _write_provenance_beside(out: Path, config: RenderConfig) -> Path:
    """``out.provenance.json``, written atomically (the map file is not a folder)."""
    prov = out.with_name(out.name + ".provenance.json")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.prov-") as d:
        os.replace(write_provenance(Path(d), "render", config.to_dict(), None), prov)
    return prov


def run(config: RenderConfig, out: str | Path, *, overwrite: bool = False) -> RenderSummary:
    """Render ``config.structure`` into the MRC map ``out`` (float32, Volts, [z, y, x]).

    Arguments:
        config: what to render and how.
        out: the map file; it must not exist unless ``overwrite``.
        overwrite: replace an existing ``out``.

    Returns:
        a :class:`RenderSummary`.
    """
    out = Path(out)
    check_output_target(out, overwrite)
    model = read_structure(
        config.structure, model_index=config.model, require_b_factors=config.use_b_factors
    )
    volume = reference_map(
        model,
        config.box_size,
        config.pixel_size,
        center=config.center,
        selection=config.selection,
        use_b_factors=config.use_b_factors,
        b_factor=config.b_factor,
        lowpass=config.lowpass,
    )
    with atomic_output_file(out, overwrite=overwrite) as tmp:
        write_map(tmp, volume, config.pixel_size, overwrite=True)
    _write_provenance_beside(out, config)
    return RenderSummary(
        out,
        config.box_size,
        config.pixel_size,
        model.n_atoms,
        float(volume.min()),
        float(volume.max()),
    )
