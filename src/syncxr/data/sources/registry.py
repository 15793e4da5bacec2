"""Registry of evaluation dataset loaders: `load_dataset(name, data_dir, **options)`.

`DATASETS` names each loader (one line per dataset; the module is imported only when used). A
loader takes `data_dir` plus keyword options and returns an `EvalDataset`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncxr.errors import UserError
from syncxr.registry import Registry

if TYPE_CHECKING:
    from syncxr.data.sources.base import EvalDataset

DATASETS: "Registry[EvalDataset]" = Registry(
    "evaluation dataset",
    {
        "chexpert": "syncxr.data.sources.chexpert:load_chexpert",
        "chexpert5x200": "syncxr.data.sources.chexpert:load_chexpert5x200",
        "cxr14": "syncxr.data.sources.cxr14:load_cxr14",
        "padchest": "syncxr.data.sources.padchest:load_padchest",
        "rsna": "syncxr.data.sources.rsna:load_rsna",
        "siim": "syncxr.data.sources.siim:load_siim",
        "covidx": "syncxr.data.sources.covidx:load_covidx",
        "csv": "syncxr.data.sources.labels_csv:load_labels_csv",
        "sim": "syncxr.data.sources.simbench:load_sim",
    },
)


def dataset_names() -> list[str]:
    return DATASETS.names()


def load_dataset(name: str, data_dir: str | Path, **options: Any) -> "EvalDataset":
    """Load evaluation dataset `name` from `data_dir` (its official layout); see each loader."""
    if name not in DATASETS:
        raise UserError(f"unknown evaluation dataset {name!r}; valid names: {', '.join(DATASETS.names())}")
    factory = DATASETS.get(name)
    accepted = [p for p in inspect.signature(factory).parameters if p != "data_dir"]
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise UserError(f"dataset {name!r}: unknown option(s) {unknown}; accepted options: {accepted}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"dataset {name!r}: data_dir {data_dir} is not a folder")
    return DATASETS.create(name, options, context={"data_dir": data_dir})
