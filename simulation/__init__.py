"""paysight simulation: the seeded demo world (`simulate`) and its separate ground truth."""

from simulation.params import SimulationError
from simulation.truth import load_truth
from simulation.world import SimulationResult, simulate

__all__ = ["SimulationError", "SimulationResult", "load_truth", "simulate"]
