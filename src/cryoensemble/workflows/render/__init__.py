"""Rendering (``cryoensemble render``): a structure as a 3-D map of voxel-averaged potential,
placed exactly as ``cryoensemble simulate`` places it. See ``docs/simulate.md``."""

from cryoensemble.workflows.render._config import RenderConfig as RenderConfig
from cryoensemble.workflows.render._config import load_config as load_config
from cryoensemble.workflows.render._map import reference_map as reference_map
from cryoensemble.workflows.render._run import RenderSummary as RenderSummary
from cryoensemble.workflows.render._run import run as run

__all__ = ["RenderConfig", "RenderSummary", "load_config", "reference_map", "run"]
