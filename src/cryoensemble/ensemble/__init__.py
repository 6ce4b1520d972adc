"""Ensemble kernels: the jitted inner step of ensemble optimisation and the priors (projectors that
keep walkers physical between likelihood steps: elastic-network Langevin, user energies, OpenMM).

The OpenMM projector needs the optional extra ``md`` (OpenMM is imported only when a projector is
built; without it, building one raises an error naming the extra). The optimisation workflow (configuration files, the
loop with checkpoints, outputs) is :mod:`cryoensemble.workflows.optimize`.
"""

from cryoensemble.ensemble._config import ElasticNetworkConfig as ElasticNetworkConfig
from cryoensemble.ensemble._config import InnerStepConfig as InnerStepConfig
from cryoensemble.ensemble._config import LangevinConfig as LangevinConfig
from cryoensemble.ensemble._langevin import ElasticNetwork as ElasticNetwork
from cryoensemble.ensemble._langevin import LangevinProjector as LangevinProjector
from cryoensemble.ensemble._langevin import LangevinState as LangevinState
from cryoensemble.ensemble._langevin import NoProjector as NoProjector
from cryoensemble.ensemble._langevin import RigidCarry as RigidCarry
from cryoensemble.ensemble._langevin import build_elastic_network as build_elastic_network
from cryoensemble.ensemble._langevin import elastic_energy as elastic_energy
from cryoensemble.ensemble._langevin import load_user_energy as load_user_energy
from cryoensemble.ensemble._langevin import repulsion_pairs as repulsion_pairs
from cryoensemble.ensemble._openmm import OpenMMProjector as OpenMMProjector
from cryoensemble.ensemble._openmm import OpenMMWalkerState as OpenMMWalkerState
from cryoensemble.ensemble._projector import PriorProjector as PriorProjector
from cryoensemble.ensemble._step import loss_and_gradient as loss_and_gradient
from cryoensemble.ensemble._step import make_inner_step as make_inner_step

__all__ = [
    "ElasticNetwork",
    "ElasticNetworkConfig",
    "InnerStepConfig",
    "LangevinConfig",
    "LangevinProjector",
    "LangevinState",
    "NoProjector",
    "OpenMMProjector",
    "OpenMMWalkerState",
    "PriorProjector",
    "RigidCarry",
    "build_elastic_network",
    "elastic_energy",
    "load_user_energy",
    "loss_and_gradient",
    "make_inner_step",
    "repulsion_pairs",
]
