"""The demo (``cryoensemble demo``): a simulated dataset and an ensemble optimisation on the bundled
adenylate kinase models."""

from cryoensemble.workflows.demo._run import DEMO_STEPS as DEMO_STEPS
from cryoensemble.workflows.demo._run import run as run
from cryoensemble.workflows.demo._steps import optimize_step as optimize_step
from cryoensemble.workflows.demo._steps import simulate_step as simulate_step

__all__ = ["DEMO_STEPS", "optimize_step", "simulate_step", "run"]
