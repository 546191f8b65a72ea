"""Mask methods, numpy/scipy (numba where a loop needs it), no TensorFlow.

* `halftoning`: Bayer matrices and ordered dithering;
* `analytic`: Belhachmi et al.'s density, halftoned (ordered, error
  diffusion, electrostatic via `electrostatic`);
* `densification`, `sparsification` (PS), `exchange` (NLPE), `random_masks`;
* `point_placement`: densification steered by learned weights;
* `exact_density`: exact point counts and confidence ranking;
* `registry`: mask method name -> function, for the command and evaluation.
"""
