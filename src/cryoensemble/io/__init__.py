"""File input and output: MRC maps and stacks, RELION STAR files, cryoSPARC ``.cs`` files, the
lazy particle dataset, configuration files, atomic outputs and provenance records.

See ``docs/io.md`` (STAR, MRC, datasets) and ``docs/cryosparc.md`` (``.cs`` conventions).
"""

from cryoensemble.io._config import read_mapping as read_mapping
from cryoensemble.io._config import to_jsonable as to_jsonable
from cryoensemble.io._cryosparc import CRYOSPARC_FIELDS as CRYOSPARC_FIELDS
from cryoensemble.io._cryosparc import cryosparc_pose_to_euler as cryosparc_pose_to_euler
from cryoensemble.io._cryosparc import read_cryosparc as read_cryosparc
from cryoensemble.io._dataset import ParticleDataset as ParticleDataset
from cryoensemble.io._likelihood_matrix import load_likelihood_matrix as load_likelihood_matrix
from cryoensemble.io._likelihood_matrix import save_likelihood_matrix as save_likelihood_matrix
from cryoensemble.io._mrc import MrcHeaderInfo as MrcHeaderInfo
from cryoensemble.io._mrc import MrcStackWriter as MrcStackWriter
from cryoensemble.io._mrc import read_header as read_header
from cryoensemble.io._mrc import read_map as read_map
from cryoensemble.io._mrc import read_stack as read_stack
from cryoensemble.io._mrc import write_map as write_map
from cryoensemble.io._outputs import atomic_output_dir as atomic_output_dir
from cryoensemble.io._outputs import atomic_output_file as atomic_output_file
from cryoensemble.io._outputs import check_output_target as check_output_target
from cryoensemble.io._outputs import versions as versions
from cryoensemble.io._outputs import write_provenance as write_provenance
from cryoensemble.io._star import EXTRA_COLUMN_PREFIX as EXTRA_COLUMN_PREFIX
from cryoensemble.io._star import OPTICS_COLUMNS as OPTICS_COLUMNS
from cryoensemble.io._star import PARTICLE_COLUMNS as PARTICLE_COLUMNS
from cryoensemble.io._star import ParticleTable as ParticleTable
from cryoensemble.io._star import format_image_name as format_image_name
from cryoensemble.io._star import parse_image_name as parse_image_name
from cryoensemble.io._star import particle_arrays as particle_arrays
from cryoensemble.io._star import read_particles as read_particles
from cryoensemble.io._star import resolve_image_path as resolve_image_path
from cryoensemble.io._star import write_particles as write_particles
