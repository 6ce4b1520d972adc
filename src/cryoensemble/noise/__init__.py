"""Noise models: white Gaussian noise at an SNR, Poisson shot noise from an electron dose."""

from cryoensemble.noise._gaussian import (
    add_gaussian_noise,
    circular_mask,
    signal_variance,
    snr_noise_sigma,
)
from cryoensemble.noise._poisson import contrast_from_potential, expected_counts, poisson_images

__all__ = [
    "add_gaussian_noise",
    "circular_mask",
    "contrast_from_potential",
    "expected_counts",
    "poisson_images",
    "signal_variance",
    "snr_noise_sigma",
]
