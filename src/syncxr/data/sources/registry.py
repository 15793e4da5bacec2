"""Registry of evaluation dataset loaders: `load_dataset(name, data_dir, **options)`.

Each loader module registers its factories with `@DATASETS.register(name)`; a factory takes
`data_dir` plus keyword options and returns an `EvalDataset`.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from syncxr.data.sources.base import EvalDataset
from syncxr.errors import UserError
from syncxr.registry import Registry

DATASETS: Registry[EvalDataset] = Registry("evaluation dataset")

_LOADER_MODULES = ("chexpert", "cxr14", "padchest", "rsna", "siim", "covidx", "labels_csv", "simbench")


def _ensure_registered() -> None:
    for mod in _LOADER_MODULES:
        importlib.import_module(f"syncxr.data.sources.{mod}")


def dataset_names() -> list[str]:
    _ensure_registered()
    return DATASETS.names()


def load_dataset(name: str, data_dir: str | Path, **options: Any) -> EvalDataset:
    """Load evaluation dataset `name` from `data_dir` (its official layout); see each loader."""
    _ensure_registered()
    if name not in DATASETS:
        raise UserError(f"unknown evaluation dataset {name!r}; valid names: {', '.join(DATASETS.names())}")
    factory = DATASETS.get(name)
    try:
        inspect.signature(factory).bind(data_dir, **options)
    except TypeError:
        accepted = [p for p in inspect.signature(factory).parameters if p != "data_dir"]
        unknown = sorted(k for k in options if k not in accepted)
        raise UserError(
            f"dataset {name!r}: unknown option(s) {unknown}; accepted options: {accepted}"
        ) from None
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"dataset {name!r}: data_dir {data_dir} is not a folder")
    return factory(data_dir, **options)
