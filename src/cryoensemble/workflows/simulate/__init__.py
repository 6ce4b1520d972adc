"""Dataset simulation (``cryoensemble simulate``): particles drawn from a configuration, imaged,
and written as a RELION STAR file with MRC stacks, ground truth and a gallery.
See ``docs/simulate.md``.

    config = load_config("my.yaml", n_particles=500)   # SimulateConfig, ConfigError on bad input
    summary = run(config, "sim")                        # SimulateSummary
"""

from cryoensemble.workflows.simulate._config import DEFAULT_STRUCTURE as DEFAULT_STRUCTURE
from cryoensemble.workflows.simulate._config import NUISANCES as NUISANCES
from cryoensemble.workflows.simulate._config import SimulateConfig as SimulateConfig
from cryoensemble.workflows.simulate._config import load_config as load_config
from cryoensemble.workflows.simulate._images import ImageBatch as ImageBatch
from cryoensemble.workflows.simulate._images import NoiseLevels as NoiseLevels
from cryoensemble.workflows.simulate._images import iter_images as iter_images
from cryoensemble.workflows.simulate._images import load_atoms as load_atoms
from cryoensemble.workflows.simulate._plots import save_gallery as save_gallery
from cryoensemble.workflows.simulate._run import regenerate_images as regenerate_images
from cryoensemble.workflows.simulate._run import run as run
from cryoensemble.workflows.simulate._sampling import draw_particles as draw_particles
from cryoensemble.workflows.simulate._sampling import resolve_config as resolve_config
from cryoensemble.workflows.simulate._sampling import stack_name as stack_name
from cryoensemble.workflows.simulate._summary import SimulateSummary as SimulateSummary
from cryoensemble.workflows.simulate._summary import (
    default_output_folder as default_output_folder,
)

__all__ = [
    "DEFAULT_STRUCTURE",
    "NUISANCES",
    "ImageBatch",
    "NoiseLevels",
    "SimulateConfig",
    "SimulateSummary",
    "default_output_folder",
    "draw_particles",
    "iter_images",
    "load_atoms",
    "load_config",
    "regenerate_images",
    "resolve_config",
    "run",
    "save_gallery",
    "stack_name",
]
