"""Reweighting (``cryoensemble reweight``): population weights of given structures from particle
images, with posterior intervals. See ``docs/likelihood.md``.

:class:`ReweightConfig` (validated settings) -> :func:`run` (load the structures, :func:`reweight`,
:func:`write_outputs` into an atomic output folder with provenance). :func:`reweight_matrix` fits
the weights of any likelihood matrix; :func:`prepare_atoms` turns an ensemble's models into
centred (aligned) Gaussian atoms.
"""

from cryoensemble.workflows.reweight._atoms import prepare_atoms as prepare_atoms
from cryoensemble.workflows.reweight._config import ReweightConfig as ReweightConfig
from cryoensemble.workflows.reweight._config import (
    check_likelihood_options as check_likelihood_options,
)
from cryoensemble.workflows.reweight._outputs import summary_lines as summary_lines
from cryoensemble.workflows.reweight._outputs import write_outputs as write_outputs
from cryoensemble.workflows.reweight._plots import plot_assignments as plot_assignments
from cryoensemble.workflows.reweight._plots import plot_weights as plot_weights
from cryoensemble.workflows.reweight._reweight import ReweightResult as ReweightResult
from cryoensemble.workflows.reweight._reweight import reweight as reweight
from cryoensemble.workflows.reweight._reweight import reweight_matrix as reweight_matrix
from cryoensemble.workflows.reweight._run import run as run

__all__ = [
    "ReweightConfig",
    "ReweightResult",
    "check_likelihood_options",
    "plot_assignments",
    "plot_weights",
    "prepare_atoms",
    "reweight",
    "reweight_matrix",
    "run",
    "summary_lines",
    "write_outputs",
]
