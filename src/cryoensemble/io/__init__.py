"""File input and output: MRC maps and stacks, RELION STAR files, the lazy particle dataset."""

from cryoensemble.io._dataset import ParticleDataset
from cryoensemble.io._mrc import (
    MrcHeaderInfo,
    MrcStackWriter,
    read_header,
    read_map,
    read_stack,
    write_map,
)
from cryoensemble.io._star import (
    EXTRA_COLUMN_PREFIX,
    OPTICS_COLUMNS,
    PARTICLE_COLUMNS,
    ParticleTable,
    format_image_name,
    parse_image_name,
    particle_arrays,
    read_particles,
    resolve_image_path,
    write_particles,
)

__all__ = [
    "EXTRA_COLUMN_PREFIX",
    "OPTICS_COLUMNS",
    "PARTICLE_COLUMNS",
    "MrcHeaderInfo",
    "MrcStackWriter",
    "ParticleDataset",
    "ParticleTable",
    "format_image_name",
    "parse_image_name",
    "particle_arrays",
    "read_header",
    "read_map",
    "read_particles",
    "read_stack",
    "resolve_image_path",
    "write_map",
    "write_particles",
]
