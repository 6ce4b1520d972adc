"""Ensemble optimisation: structures and weights of M walkers from particle images under a
physical prior (Silva-Sanchez, Thiede, Lederman, Cossio 2025). See ``docs/optimize.md``.

The OpenMM projector lives in :mod:`.openmm_projector` (optional extra ``md``) and is imported
lazily; everything here is pure JAX/numpy.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import (
    ElasticNetworkConfig,
    LangevinConfig,
    OpenMMConfig,
    OptimizeConfig,
    OptimizeSettings,
    ProjectorConfig,
    load_optimize_config,
)
from .langevin import (
    ElasticNetwork,
    LangevinProjector,
    NoProjector,
    RigidCarry,
    build_elastic_network,
    elastic_energy,
    load_user_energy,
)
from .optimizer import (
    ArrayParticles,
    EnsembleOptimizer,
    OptimizeResult,
    em_weights,
    make_inner_step,
    superposed_rmsd,
)
from .projector_base import PriorProjector

__all__ = [
    "ArrayParticles",
    "ElasticNetwork",
    "ElasticNetworkConfig",
    "EnsembleOptimizer",
    "LangevinConfig",
    "LangevinProjector",
    "NoProjector",
    "OpenMMConfig",
    "OptimizeConfig",
    "OptimizeResult",
    "OptimizeSettings",
    "PriorProjector",
    "ProjectorConfig",
    "RigidCarry",
    "build_elastic_network",
    "elastic_energy",
    "em_weights",
    "load_checkpoint",
    "load_optimize_config",
    "load_user_energy",
    "make_inner_step",
    "save_checkpoint",
    "superposed_rmsd",
]
