"""Microscope optics: the contrast transfer function (RELION convention) and its application."""

from cryoensemble.optics._apply import apply_ctf, padded_size
from cryoensemble.optics._ctf import CTFParams, ctf, ctf_phase, frequency_grid

__all__ = ["CTFParams", "apply_ctf", "ctf", "ctf_phase", "frequency_grid", "padded_size"]
