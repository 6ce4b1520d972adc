"""Microscope optics: the contrast transfer function (RELION convention) and its application."""

from .apply import apply_ctf, padded_size
from .ctf import CTFParams, ctf, ctf_phase, frequency_grid

__all__ = ["CTFParams", "apply_ctf", "ctf", "ctf_phase", "frequency_grid", "padded_size"]
