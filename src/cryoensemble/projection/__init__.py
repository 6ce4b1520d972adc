"""Projection of the potential onto images: Gaussian atoms integrated over pixels, maps by
Fourier slices; and rendering of atoms into maps."""

from cryoensemble.projection._atoms import (
    DEFAULT_TRUNCATION_TOLERANCE as DEFAULT_TRUNCATION_TOLERANCE,
)
from cryoensemble.projection._atoms import default_half_width as default_half_width
from cryoensemble.projection._atoms import project_atoms as project_atoms
from cryoensemble.projection._atoms import truncated_mass_fraction as truncated_mass_fraction
from cryoensemble.projection._maps import MapProjector as MapProjector
from cryoensemble.projection._maps import map_slice as map_slice
from cryoensemble.projection._maps import prepare_map_projection as prepare_map_projection
from cryoensemble.projection._maps import project_map as project_map
from cryoensemble.projection._maps import project_map_batch as project_map_batch
from cryoensemble.projection._maps import project_map_batch_jit as project_map_batch_jit
from cryoensemble.projection._maps import project_map_jit as project_map_jit
from cryoensemble.projection._maps import render_map as render_map
