"""Ensemble priors: the projectors that keep walkers physical between likelihood steps
(elastic-network Langevin, user energies, OpenMM), pure JAX/numpy.

The OpenMM projector lives in :mod:`cryoensemble.ensemble._openmm` (optional extra ``md``) and is
imported only when asked for. The optimisation workflow is :mod:`cryoensemble.workflows.optimize`.
"""

from cryoensemble.ensemble._langevin import (
    ElasticNetwork as ElasticNetwork,
)
from cryoensemble.ensemble._langevin import (
    LangevinProjector as LangevinProjector,
)
from cryoensemble.ensemble._langevin import (
    NoProjector as NoProjector,
)
from cryoensemble.ensemble._langevin import (
    RigidCarry as RigidCarry,
)
from cryoensemble.ensemble._langevin import (
    build_elastic_network as build_elastic_network,
)
from cryoensemble.ensemble._langevin import (
    elastic_energy as elastic_energy,
)
from cryoensemble.ensemble._langevin import (
    load_user_energy as load_user_energy,
)
from cryoensemble.ensemble._langevin import (
    repulsion_pairs as repulsion_pairs,
)
from cryoensemble.ensemble._projector import PriorProjector as PriorProjector
