"""The configuration of ``cryoensemble render``: a validated pydantic model (all checks here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cryoensemble.io._config import validate_config
from cryoensemble.workflows.simulate._config import check_selection

__all__ = ["RenderConfig", "load_config"]


class RenderConfig(BaseModel):
    """A structure rendered as a map of voxel-averaged potential. Units: Angstrom, A^2."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    structure: Path = Field(description="Structure file (PDB/mmCIF).")
    box_size: int = Field(ge=2, description="Map side in voxels.")
    pixel_size: float = Field(gt=0, description="Voxel size in Angstrom.")
    center: bool = Field(
        True,
        description="Put the centre of mass of all atoms at voxel N//2, as cryoensemble "
        "simulate does (off: the file's coordinates, origin at voxel N//2).",
    )
    model: int = Field(0, ge=0, description="Model index (0-based) in multi-model files.")
    selection: str = Field(
        "all", description="Atoms rendered: all, heavy, calpha, backbone, chain:A,B."
    )
    use_b_factors: bool = Field(False, description="Blur each atom by its B-factor from the file.")
    b_factor: float = Field(0.0, ge=0, description="Global B-factor in A^2 added to every atom.")
    lowpass: float | None = Field(
        None, gt=0, description="Low-pass to this resolution in Angstrom (raised-cosine edge)."
    )

    @field_validator("selection")
    @classmethod
    def _check_selection(cls, v: str) -> str:
        return check_selection(v)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dictionary (the structure path absolute)."""
        d = self.model_dump(mode="json")
        d["structure"] = str(self.structure.absolute())
        return d


def load_config(*, labels: Mapping[str, str] | None = None, **values: Any) -> RenderConfig:
    """A validated :class:`RenderConfig` from field values (e.g. the command line's).

    Arguments:
        labels: how messages name the fields (the command line passes its flags).
        values: field values; ``None`` values are ignored (defaults apply).

    Raises:
        ConfigError: naming every invalid field.
    """
    given = {k: v for k, v in values.items() if v is not None}
    return validate_config(RenderConfig, given, "render configuration", labels)
