"""Training: the trainer and its distributed step, the loop, data, warm starts.

* `data`: crops, splits, tf.data pipelines, random masks;
* `trainer`: `Trainer` (networks, optimisers, the step, checkpoints);
* `loop`: `train` and `export_run`, validation, summaries;
* `cluster`: the distribution strategy and cluster roles;
* `warm_start`: ``init_from``.

The settings are `wgimask.config.TrainingConfig`; the run folder's layout is
`wgimask.run_folder`.
"""
