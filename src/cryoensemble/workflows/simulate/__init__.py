"""Dataset simulation (``cryoensemble simulate``): particles drawn from a configuration, imaged,
and written as a RELION STAR file with MRC stacks, ground truth and a gallery.
See ``docs/simulate.md``.
"""

from cryoensemble.workflows.simulate._simulate import (
    SimulationConfig as SimulationConfig,
)
from cryoensemble.workflows.simulate._simulate import (
    SimulationSummary as SimulationSummary,
)
from cryoensemble.workflows.simulate._simulate import (
    load_config as load_config,
)
from cryoensemble.workflows.simulate._simulate import (
    reference_map as reference_map,
)
from cryoensemble.workflows.simulate._simulate import (
    regenerate_images as regenerate_images,
)
from cryoensemble.workflows.simulate._simulate import (
    simulate_dataset as simulate_dataset,
)
