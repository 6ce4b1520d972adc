"""Projection of atomic models and maps onto images, and rendering of maps."""

from cryoensemble.projection._atoms import (
    DEFAULT_TRUNCATION_TOLERANCE,
    default_half_width,
    project_atoms,
    truncated_mass_fraction,
)

__all__ = [
    "DEFAULT_TRUNCATION_TOLERANCE",
    "default_half_width",
    "truncated_mass_fraction",
    "project_atoms",
]

from cryoensemble.projection._maps import (  # noqa: E402
    MapProjector,
    prepare_map_projection,
    project_map,
    project_map_batch,
    project_map_batch_jit,
    project_map_jit,
    render_map,
)

__all__ += [
    "MapProjector",
    "prepare_map_projection",
    "project_map",
    "project_map_batch",
    "project_map_batch_jit",
    "project_map_jit",
    "render_map",
]
