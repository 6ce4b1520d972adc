"""Reweighting (``cryoensemble reweight``): population weights of given structures from particle
images, with posterior intervals. See ``docs/likelihood.md``.
"""

from cryoensemble.workflows.reweight._reweight import (
    ReweightResult as ReweightResult,
)
from cryoensemble.workflows.reweight._reweight import (
    reweight as reweight,
)
from cryoensemble.workflows.reweight._reweight import (
    reweight_matrix as reweight_matrix,
)
from cryoensemble.workflows.reweight._reweight import (
    write_outputs as write_outputs,
)
