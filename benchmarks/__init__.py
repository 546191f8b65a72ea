"""Measurements, run as modules from the project's root.

* `benchmarks.speed`: timings and ratios (``python -m benchmarks.speed.solvers``);
* `benchmarks.studies`: the studies that chose defaults
  (``python -m benchmarks.studies.analytic_defaults``).

Each script names the CPU next to its figures; compare only figures of one run.
"""
