"""The composed image-formation pipeline."""

from cryoensemble.imaging._pipeline import (
    ImagingConfig,
    image_one,
    simulate_images,
    simulate_images_jit,
)

__all__ = ["ImagingConfig", "image_one", "simulate_images", "simulate_images_jit"]
