"""The composed image-formation pipeline."""

from .pipeline import ImagingConfig, image_one, simulate_images, simulate_images_jit

__all__ = ["ImagingConfig", "image_one", "simulate_images", "simulate_images_jit"]
