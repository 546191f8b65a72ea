"""Evaluation: the paper's comparisons (Tables 2-4, Figs. 2-3) on any image set.

* `wgimask.evaluation.config`: methods ``<mask>+<operator>`` and `EvaluationConfig`;
* `wgimask.evaluation.run`: `run_evaluation`, masks and inpaintings per method;
* `wgimask.evaluation.models`: which exported models the methods need;
* `wgimask.evaluation.reports`: images, progress, CSV and Markdown tables, figures;
* `wgimask.evaluation.tradeoff`: the quality-against-time figure;
* `wgimask.evaluation.metrics`: PSNR, MAE, SSIM (numpy only).

The names below are imported on first use, so ``from wgimask.evaluation
import metrics`` loads only the metrics.
"""

import importlib

_LAZY = {
    "ConfigError": "config",
    "EvaluationConfig": "config",
    "LEARNED_DEVICES": "config",
    "MG_DENSITY_MODES": "config",
    "NETM_MASK_MODES": "config",
    "Method": "config",
    "parse_method": "config",
    "split_nlpe": "config",
    "LearnedModels": "models",
    "MissingModelsError": "models",
    "check_models": "models",
    "model_path": "models",
    "required_models": "models",
    "EvaluationError": "reports",
    "markdown_report": "reports",
    "summarise": "reports",
    "PER_IMAGE_COLUMNS": "run",
    "RESULT_COLUMNS": "run",
    "EvaluationResult": "run",
    "method_device": "run",
    "method_seed": "run",
    "run_evaluation": "run",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"wgimask.evaluation.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wgimask.evaluation' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
