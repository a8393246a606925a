"""matssl: does self-supervised pretraining help your materials property, and by how much?

The public API is the names below (documented in docs/api.md): `from matssl import Plan, load_config`. Each is
imported on first use, so that `import matssl` stays light (the command line imports torch only for the stages
that train). Everything else in the package's modules is internal and may change without notice.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it
_PUBLIC = {
    # configs and plans: the workflow's stages, their keys and folders
    "load_config": "validate",
    "parse_config": "validate",
    "Config": "config",
    "ConfigError": "config",
    "read_config": "config",
    "SAFE_NAME": "config",
    "FingerprintConfig": "config",
    "FINGERPRINT_KINDS": "config",
    "Plan": "stages",
    "Stage": "stages",
    "foreign_stage_problems": "stages",
    "installed_versions": "stages",
    "read_json": "io",
    "InputError": "io",
    # results: summaries and statistics
    "Runs": "summarize",
    "collect": "summarize",
    "summarize_property": "summarize",
    "stage_key": "summarize",
    "run_id": "summarize",
    "RUN_ID": "summarize",
    "PROPERTY_FIELDS": "summarize",
    "SummaryError": "summarize",
    "confirmatory_of": "summarize",
    "analyse": "stats",
    "Named": "stats",
    "Analysis": "stats",
    "Estimate": "stats",
    "SCORES": "stats",
    "DUMMIES": "stats",
    "ALPHA": "stats",
    "compare_all": "stats",
    "summarize_runs": "stats",
    "corrected_t": "stats",
    "random_effects": "stats",
    "two_level": "stats",
    "write_summary": "report",
    "write_summary_report": "report",
    "markdown_summary": "report",
    "markdown_table": "report",
    "fmt": "report",
    "unit_label": "report",
    "minus": "report",
    "budget_plot": "report",
    "method_order": "report",
    # data, models and training, for benchmarks and notebooks
    "Crystal": "table",
    "read_extxyz": "sources",
    "matbench_folds": "evaluate",
    "GraphSet": "graphs",
    "Batch": "graphs",
    "CGCNN": "encoders",
    "GaussianExpansion": "encoders",
    "mean_pool": "encoders",
    "Regressor": "finetune",
    "FoundationRegressor": "finetune",
    "featurize": "foundation",
    "frozen_features": "foundation",
    "keep_freed_memory": "train",
    "OBJECTIVES": "objectives",
    "PretrainData": "objectives",
    "pretrain_data": "pretrain",
    "views_index": "pretrain",
    "convergence": "pretrain",
    "make_views": "augment",
    "aligned_fingerprints": "objectives.fingerprint",
    "fingerprints": None,
    "kernels": None,
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'matssl' has no attribute {name!r}")
    module = _PUBLIC[name]
    if module is None:  # a public module
        return importlib.import_module(f"matssl.{name}")
    return getattr(importlib.import_module(f"matssl.{module}"), name)
