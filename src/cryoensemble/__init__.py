"""cryoensemble: differentiable cryo-EM image simulation and ensemble inference in JAX."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryoensemble")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
