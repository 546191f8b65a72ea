"""Serving: exports (SavedModel signatures defined once), LiteRT copies, loading.

* `export`: SavedModels for TF Serving and ``.keras`` files;
* `parts`: the parts of the networks that inference runs;
* `lite`: their LiteRT copies (``python -m wgimask.serve.lite RUN_DIR``);
* `model_files`: finding runs and exports, their configs and weights.
"""
