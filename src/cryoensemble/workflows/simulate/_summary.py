"""What a simulation did: counts, noise level, timing (``summary.json``)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from cryoensemble.workflows.simulate._config import NUISANCES

__all__ = ["SUMMARY_NAME", "SimulateSummary", "default_output_folder"]

SUMMARY_NAME = "summary.json"


@dataclasses.dataclass
class SimulateSummary:
    """The result of :func:`cryoensemble.workflows.simulate.run`.

    Times in seconds; ``noise_sigma`` in image (phase-contrast) units; ``snr_mask_radius_px`` in
    pixels; ``structure_centers`` in Angstrom (None: the file's coordinates); ``noise_levels``:
    the gaussian noise's ``sigma`` (total), ``white`` (its white part) and ``ice`` (factor on
    unit-variance ice before the CTF), phase-contrast units (None without gaussian noise).
    """

    folder: Path
    star_path: Path
    n_particles: int
    particles_per_structure: list[int]
    stacks: list[str]
    box_size: int
    pixel_size: float
    noise: str
    noise_sigma: float | None
    snr_mask_radius_px: float | None
    structure_centers: list[list[float] | None]
    n_devices: int
    elapsed_s: float
    images_per_s: float
    config: dict[str, Any]
    noise_levels: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dictionary (paths as strings)."""
        d = dataclasses.asdict(self)
        d["folder"] = str(self.folder)
        d["star_path"] = str(self.star_path)
        return d

    def to_json_record(self) -> dict[str, Any]:
        """As :meth:`to_dict` with the STAR file relative to the folder (for ``summary.json``)."""
        d = self.to_dict()
        del d["folder"]
        d["star_path"] = self.star_path.name
        return d

    def write(self, folder: Path) -> Path:
        """Write ``summary.json`` into ``folder``; returns its path."""
        path = Path(folder) / SUMMARY_NAME
        path.write_text(json.dumps(self.to_json_record(), indent=2) + "\n")
        return path

    def describe(self) -> list[str]:
        """Lines saying what was simulated and where the outputs are."""
        out = self.folder
        lines = [
            f"simulated {self.n_particles} particles ({self.box_size} x {self.box_size} px, "
            f"{self.pixel_size:g} A) in {self.elapsed_s:.1f} s "
            f"({self.images_per_s:.0f} images/s on {self.n_devices} device(s))",
            f"  particles:    {out / 'particles.star'}  ({len(self.stacks)} stack(s))",
            f"  ground truth: {out / 'ground_truth.csv'}",
            f"  config:       {out / 'config.yaml'}  (provenance.json, summary.json)",
        ]
        on = {k: v for k, v in self.config.items() if k in NUISANCES and v}
        if on:
            lines.append("  nuisances:    " + ", ".join(f"{k}={v}" for k, v in on.items()))
        if (out / "gallery.png").exists():
            lines.append(f"  gallery:      {out / 'gallery.png'}")
        return lines


def default_output_folder() -> Path:
    """A new folder ``cryoensemble_simulation_<YYYYmmdd-HHMMSS>`` in the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(f"cryoensemble_simulation_{stamp}")
    i = 1
    while out.exists():
        out = Path(f"cryoensemble_simulation_{stamp}_{i}")
        i += 1
    return out
