"""Rendering (``cryoensemble render``): a structure as a 3-D map."""
