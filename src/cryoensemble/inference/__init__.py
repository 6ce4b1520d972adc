"""Inference: image likelihoods, likelihood matrices, population weights and their posterior.

See ``docs/likelihood.md`` for the formulas, the conventions and the benchmark figures.
"""

from cryoensemble.inference._likelihood import (
    log_likelihood_colored,
    log_likelihood_marginal,
    log_likelihood_white,
    whiten,
)
from cryoensemble.inference._likelihood_matrix import (
    KINDS,
    LikelihoodOptions,
    circular_mask_px,
    likelihood_matrix,
    likelihood_matrix_arrays,
    load_likelihood_matrix,
    particle_mesh,
    save_likelihood_matrix,
    stack_structures,
)
from cryoensemble.inference._noise_model import estimate_psd, estimate_psd_from_dataset, white_psd
from cryoensemble.inference._posterior import (
    effective_sample_size,
    sample_posterior_gibbs,
    summarize_samples,
)
from cryoensemble.inference._weights import (
    fit_weights_em,
    held_out_check,
    log_likelihood_weights,
    responsibilities,
)

__all__ = [
    "KINDS",
    "LikelihoodOptions",
    "circular_mask_px",
    "effective_sample_size",
    "estimate_psd",
    "estimate_psd_from_dataset",
    "fit_weights_em",
    "held_out_check",
    "likelihood_matrix",
    "likelihood_matrix_arrays",
    "load_likelihood_matrix",
    "log_likelihood_colored",
    "log_likelihood_marginal",
    "log_likelihood_white",
    "log_likelihood_weights",
    "particle_mesh",
    "responsibilities",
    "sample_posterior_gibbs",
    "save_likelihood_matrix",
    "stack_structures",
    "summarize_samples",
    "white_psd",
    "whiten",
]
