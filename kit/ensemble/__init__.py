"""Ensembles of runs: mean, log-loss-optimal weights, Caruana hill climbing and stacking, each with an honest estimate."""

from kit.ensemble.methods import METHODS, EnsembleResult, combine

__all__ = ["METHODS", "EnsembleResult", "combine"]
