"""Timings and ratios: networks, training step, solvers, baselines, the command."""
