"""Noise models as types: white and coloured Gaussian noise and Poisson shot noise, each with
``sample`` and ``log_likelihood``; the SNR convention; noise power spectrum estimation; the
amorphous-ice background spectrum."""

from cryoensemble.noise._base import AbstractGaussianNoise as AbstractGaussianNoise
from cryoensemble.noise._base import AbstractNoiseModel as AbstractNoiseModel
from cryoensemble.noise._gaussian import ColoredGaussianNoise as ColoredGaussianNoise
from cryoensemble.noise._gaussian import WhiteGaussianNoise as WhiteGaussianNoise
from cryoensemble.noise._gaussian import add_gaussian_noise as add_gaussian_noise
from cryoensemble.noise._gaussian import signal_variance as signal_variance
from cryoensemble.noise._gaussian import snr_noise_sigma as snr_noise_sigma
from cryoensemble.noise._ice import ICE_SPECTRUM as ICE_SPECTRUM
from cryoensemble.noise._ice import ice_power_spectrum as ice_power_spectrum
from cryoensemble.noise._ice import ice_psd as ice_psd
from cryoensemble.noise._ice import sample_ice as sample_ice
from cryoensemble.noise._poisson import PoissonNoise as PoissonNoise
from cryoensemble.noise._poisson import expected_counts as expected_counts
from cryoensemble.noise._poisson import poisson_images as poisson_images
from cryoensemble.noise._psd import NoiseSpectra as NoiseSpectra
from cryoensemble.noise._psd import estimate_noise_spectra as estimate_noise_spectra
from cryoensemble.noise._psd import estimate_psd as estimate_psd
from cryoensemble.noise._psd import estimate_psd_from_dataset as estimate_psd_from_dataset
from cryoensemble.noise._psd import white_psd as white_psd
