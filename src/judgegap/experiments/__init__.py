"""Experiments, registered by name: each runs model calls into the store and summarises records."""

from judgegap.experiments import asymmetry, attention, consistency, pairwise, selfscore  # noqa: F401  (registration)
from judgegap.experiments.base import EXPERIMENTS, RunContext

__all__ = ["EXPERIMENTS", "RunContext"]
