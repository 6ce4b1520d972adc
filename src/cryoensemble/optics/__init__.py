"""Microscope optics: the contrast transfer function (RELION convention) and its application."""

from cryoensemble.optics._apply import apply_ctf as apply_ctf
from cryoensemble.optics._apply import padded_size as padded_size
from cryoensemble.optics._ctf import CTFParams as CTFParams
from cryoensemble.optics._ctf import ctf as ctf
from cryoensemble.optics._ctf import ctf_phase as ctf_phase
