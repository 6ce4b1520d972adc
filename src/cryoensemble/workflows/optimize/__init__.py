"""Ensemble optimisation (``cryoensemble optimize``): structures and weights of M walkers from
particle images under a physical prior (Silva-Sanchez, Thiede, Lederman, Cossio 2025).
See ``docs/optimize.md``.

The kernels (the jitted inner step, the priors and their settings) are in
:mod:`cryoensemble.ensemble`; this package holds the configuration files, the loop with
checkpoints, the run function and the outputs.
"""

from cryoensemble.workflows.optimize._checkpoint import load_checkpoint as load_checkpoint
from cryoensemble.workflows.optimize._checkpoint import run_fingerprint as run_fingerprint
from cryoensemble.workflows.optimize._checkpoint import save_checkpoint as save_checkpoint
from cryoensemble.workflows.optimize._config import (
    EnsembleOptimizerConfig as EnsembleOptimizerConfig,
)
from cryoensemble.workflows.optimize._config import OpenMMConfig as OpenMMConfig
from cryoensemble.workflows.optimize._config import OptimizeConfig as OptimizeConfig
from cryoensemble.workflows.optimize._config import ProjectorConfig as ProjectorConfig
from cryoensemble.workflows.optimize._config import (
    load_optimize_config as load_optimize_config,
)
from cryoensemble.workflows.optimize._optimizer import EnsembleOptimizer as EnsembleOptimizer
from cryoensemble.workflows.optimize._optimizer import OptimizeResult as OptimizeResult
from cryoensemble.workflows.optimize._outputs import summary_lines as summary_lines
from cryoensemble.workflows.optimize._outputs import write_history as write_history
from cryoensemble.workflows.optimize._outputs import write_run_outputs as write_run_outputs
from cryoensemble.workflows.optimize._plots import plot_history as plot_history
from cryoensemble.workflows.optimize._run import PreparedRun as PreparedRun
from cryoensemble.workflows.optimize._run import prepare_run as prepare_run
from cryoensemble.workflows.optimize._run import run as run

__all__ = [
    "EnsembleOptimizer",
    "EnsembleOptimizerConfig",
    "OpenMMConfig",
    "OptimizeConfig",
    "OptimizeResult",
    "PreparedRun",
    "ProjectorConfig",
    "load_checkpoint",
    "load_optimize_config",
    "plot_history",
    "prepare_run",
    "run",
    "run_fingerprint",
    "save_checkpoint",
    "summary_lines",
    "write_history",
    "write_run_outputs",
]
