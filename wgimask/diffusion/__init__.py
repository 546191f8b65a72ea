"""Homogeneous diffusion inpainting, numpy/scipy/numba, no TensorFlow.

* `inpainting`: the linear system, direct and CG solvers, `inpaint`;
* `multigrid`, `multigrid_kernels`: the compiled multigrid-preconditioned CG.
"""
