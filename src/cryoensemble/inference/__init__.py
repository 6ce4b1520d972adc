"""Inference: image likelihoods marginalised over the per-particle intensity, likelihood
matrices, population weights and their posterior.

See ``docs/likelihood.md`` for the formulas, the conventions and the benchmark figures.
"""

from cryoensemble.inference._likelihood import centre_in_mask as centre_in_mask
from cryoensemble.inference._likelihood import log_likelihood_colored as log_likelihood_colored
from cryoensemble.inference._likelihood import log_likelihood_marginal as log_likelihood_marginal
from cryoensemble.inference._likelihood import marginal_from_centred as marginal_from_centred
from cryoensemble.inference._likelihood import marginal_from_residual as marginal_from_residual
from cryoensemble.inference._likelihood_matrix import KINDS as KINDS
from cryoensemble.inference._likelihood_matrix import LikelihoodConfig as LikelihoodConfig
from cryoensemble.inference._likelihood_matrix import (
    batch_log_likelihoods as batch_log_likelihoods,
)
from cryoensemble.inference._likelihood_matrix import likelihood_matrix as likelihood_matrix
from cryoensemble.inference._likelihood_matrix import (
    likelihood_matrix_arrays as likelihood_matrix_arrays,
)
from cryoensemble.inference._likelihood_matrix import stack_structures as stack_structures
from cryoensemble.inference._posterior import effective_sample_size as effective_sample_size
from cryoensemble.inference._posterior import sample_posterior_gibbs as sample_posterior_gibbs
from cryoensemble.inference._posterior import summarize_samples as summarize_samples
from cryoensemble.inference._weights import EMResult as EMResult
from cryoensemble.inference._weights import em_weights as em_weights
from cryoensemble.inference._weights import fit_weights_em as fit_weights_em
from cryoensemble.inference._weights import held_out_check as held_out_check
from cryoensemble.inference._weights import log_likelihood_weights as log_likelihood_weights
from cryoensemble.inference._weights import responsibilities as responsibilities

__all__ = [
    "EMResult",
    "KINDS",
    "LikelihoodConfig",
    "batch_log_likelihoods",
    "centre_in_mask",
    "effective_sample_size",
    "em_weights",
    "fit_weights_em",
    "held_out_check",
    "likelihood_matrix",
    "likelihood_matrix_arrays",
    "log_likelihood_colored",
    "log_likelihood_marginal",
    "log_likelihood_weights",
    "marginal_from_centred",
    "marginal_from_residual",
    "responsibilities",
    "sample_posterior_gibbs",
    "stack_structures",
    "summarize_samples",
]
