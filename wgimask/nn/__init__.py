"""The networks and their parts (TensorFlow/Keras).

* `blocks`, `fused_conv`: dilated parallel blocks and their fused convolutions;
* `mask_layers`, `dither`: binarisation (Table 1, ordered dither), Eq. 1;
* `losses`: Eqs. 2-4;
* `stateless_noise`: the generators' seed input, also in numpy;
* `analytic_prior`, `exact_diffusion`, `diffusion_multigrid`,
  `point_placement_graph`: the analytic density, exact diffusion with its
  implicit gradient, and densified points, as TensorFlow ops;
* `networks`: g, m and d; `build`: a run's networks from its settings.

Importing this package alone loads nothing; its modules load TensorFlow.
"""
