"""Ensemble optimisation (``cryoensemble optimize``): structures and weights of M walkers from
particle images under a physical prior (Silva-Sanchez, Thiede, Lederman, Cossio 2025).
See ``docs/optimize.md``.
"""

from cryoensemble.workflows.optimize._checkpoint import (
    load_checkpoint as load_checkpoint,
)
from cryoensemble.workflows.optimize._checkpoint import (
    save_checkpoint as save_checkpoint,
)
from cryoensemble.workflows.optimize._config import (
    ElasticNetworkConfig as ElasticNetworkConfig,
)
from cryoensemble.workflows.optimize._config import (
    LangevinConfig as LangevinConfig,
)
from cryoensemble.workflows.optimize._config import (
    OpenMMConfig as OpenMMConfig,
)
from cryoensemble.workflows.optimize._config import (
    OptimizeConfig as OptimizeConfig,
)
from cryoensemble.workflows.optimize._config import (
    OptimizeSettings as OptimizeSettings,
)
from cryoensemble.workflows.optimize._config import (
    load_optimize_config as load_optimize_config,
)
from cryoensemble.workflows.optimize._optimizer import (
    EnsembleOptimizer as EnsembleOptimizer,
)
from cryoensemble.workflows.optimize._optimizer import (
    OptimizeResult as OptimizeResult,
)
from cryoensemble.workflows.optimize._optimizer import (
    em_weights as em_weights,
)
from cryoensemble.workflows.optimize._optimizer import (
    make_inner_step as make_inner_step,
)
from cryoensemble.workflows.optimize._optimizer import (
    run_optimize as run_optimize,
)
