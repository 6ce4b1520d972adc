"""Pose estimation (``cryoensemble poses``): the pose of every particle against structures or
maps by the coarse-to-fine search of :mod:`cryoensemble.posesearch`, written as a RELION STAR
file with a report, plots and the pose-marginalised likelihood matrix. See
``docs/pose_search.md``.

:class:`PosesConfig` (validated settings) -> :func:`run` (references, search, outputs in an
atomic folder with provenance).
"""

from cryoensemble.workflows.poses._config import PosesConfig as PosesConfig
from cryoensemble.workflows.poses._outputs import error_summary as error_summary
from cryoensemble.workflows.poses._outputs import grid_levels as grid_levels
from cryoensemble.workflows.poses._outputs import input_poses_as_truth as input_poses_as_truth
from cryoensemble.workflows.poses._outputs import poses_report as poses_report
from cryoensemble.workflows.poses._outputs import poses_summary_lines as poses_summary_lines
from cryoensemble.workflows.poses._outputs import poses_table as poses_table
from cryoensemble.workflows.poses._outputs import write_poses_outputs as write_poses_outputs
from cryoensemble.workflows.poses._plots import (
    plot_angular_distribution as plot_angular_distribution,
)
from cryoensemble.workflows.poses._plots import plot_angular_error as plot_angular_error
from cryoensemble.workflows.poses._references import MAP_SUFFIXES as MAP_SUFFIXES
from cryoensemble.workflows.poses._references import References as References
from cryoensemble.workflows.poses._references import load_references as load_references
from cryoensemble.workflows.poses._run import PosesResult as PosesResult
from cryoensemble.workflows.poses._run import run as run

__all__ = [
    "MAP_SUFFIXES",
    "PosesConfig",
    "PosesResult",
    "References",
    "error_summary",
    "grid_levels",
    "input_poses_as_truth",
    "load_references",
    "plot_angular_distribution",
    "plot_angular_error",
    "poses_report",
    "poses_table",
    "run",
    "poses_summary_lines",
    "write_poses_outputs",
]
