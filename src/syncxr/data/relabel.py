"""Mapping tables from each dataset's native label names onto the shared snake_case vocabulary.

Loaders call `native_to_shared(dataset, name)` so every `EvalDataset.findings` uses one
vocabulary: the CheXpert-14 snake names where they apply (records.CHEXPERT14_SNAKE) and plain
snake_case names for dataset-specific findings (mass, nodule, infiltration, covid_19, ...).

`merge_columns` implements `EvalDataset.relabel`: several source findings mapped onto one target
are merged with "positive if any source is positive; negative if all sources are known negative;
otherwise unknown (NaN)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from syncxr.errors import UserError
from syncxr.records import CHEXPERT14, CHEXPERT14_SNAKE, snake
from syncxr.records import snake_name as records_snake_name

# ChestX-ray14 (Data_Entry_2017.csv "Finding Labels" and BBox_List_2017.csv "Finding Label").
# The box list spells infiltration "Infiltrate".
CXR14_MAP: dict[str, str] = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Effusion": "pleural_effusion",
    "Emphysema": "emphysema",
    "Fibrosis": "fibrosis",
    "Hernia": "hernia",
    "Infiltration": "infiltration",
    "Infiltrate": "infiltration",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pleural_Thickening": "pleural_thickening",
    "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax",
    "No Finding": "no_finding",
}

# PadChest labels (lower-case phrases). Subtypes that clearly belong to a shared finding are merged
# onto it (every atelectasis subtype -> atelectasis); every other label keeps its own snake name.
PADCHEST_MAP: dict[str, str] = {
    "normal": "no_finding",
    "pleural effusion": "pleural_effusion",
    "loculated pleural effusion": "pleural_effusion",
    "loculated fissural effusion": "pleural_effusion",
    "atelectasis": "atelectasis",
    "laminar atelectasis": "atelectasis",
    "lobar atelectasis": "atelectasis",
    "segmental atelectasis": "atelectasis",
    "round atelectasis": "atelectasis",
    "total atelectasis": "atelectasis",
    "pulmonary edema": "edema",
    "mediastinal enlargement": "enlarged_cardiomediastinum",
    "infiltrates": "infiltration",
    "interstitial pattern": "infiltration",
    "reticular interstitial pattern": "infiltration",
    "multiple nodules": "nodule",
    "pulmonary mass": "mass",
    "pulmonary fibrosis": "fibrosis",
    "hiatal hernia": "hernia",
    "apical pleural thickening": "pleural_thickening",
    "covid 19": "covid_19",
    "rib fracture": "fracture",
    "clavicle fracture": "fracture",
    "humeral fracture": "fracture",
    "vertebral fracture": "fracture",
    "pacemaker": "support_devices",
    "dual chamber device": "support_devices",
    "single chamber device": "support_devices",
    "endotracheal tube": "support_devices",
    "nsg tube": "support_devices",
    "central venous catheter": "support_devices",
    "central venous catheter via jugular vein": "support_devices",
    "central venous catheter via subclavian vein": "support_devices",
    "chest drain tube": "support_devices",
    "tracheostomy tube": "support_devices",
}

# COVIDx class names (v5-v9 use normal/pneumonia/COVID-19; CXR-3/4 use positive/negative).
COVIDX_MAP: dict[str, str] = {
    "normal": "no_finding",
    "pneumonia": "pneumonia",
    "COVID-19": "covid_19",
    "positive": "covid_19",
}

CHEXPERT_MAP: dict[str, str] = {name: snake(name) for name in CHEXPERT14}

# Dataset-specific findings -> the closest CheXpert-14 label, for zero-shot evaluation with
# CheXpert-14 prompts: `ds.relabel(TO_CHEXPERT14)` or `ds.relabel("chexpert14")`.
TO_CHEXPERT14: dict[str, str] = {
    "mass": "lung_lesion",
    "nodule": "lung_lesion",
    "infiltration": "lung_opacity",
    "pleural_thickening": "pleural_other",
    "covid_19": "pneumonia",
}

PRESETS: dict[str, Mapping[str, str | None]] = {"chexpert14": TO_CHEXPERT14}

_TABLES: dict[str, Mapping[str, str]] = {
    "chexpert": CHEXPERT_MAP,
    "cxr14": CXR14_MAP,
    "padchest": PADCHEST_MAP,
    "covidx": COVIDX_MAP,
}


snake_name = records_snake_name  # re-exported: one snake-case helper (syncxr.records.snake_name)


def native_to_shared(dataset: str, label: str) -> str:
    """Shared name of one native label of `dataset`; unknown labels fall back to snake_case."""
    table = _TABLES.get(dataset, {})
    key = label.strip()
    if key in table:
        return table[key]
    if key.lower() in table:
        return table[key.lower()]
    return snake_name(key)


def is_chexpert14(name: str) -> bool:
    return name in CHEXPERT14_SNAKE


def resolve_map(vocab_map: Mapping[str, str | None] | str) -> Mapping[str, str | None]:
    """A mapping, or the name of a preset in PRESETS."""
    if isinstance(vocab_map, str):
        if vocab_map not in PRESETS:
            raise UserError(
                f"unknown relabel preset {vocab_map!r}; expected one of {sorted(PRESETS)} "
                "or a dict {source_finding: target_finding or None}"
            )
        return PRESETS[vocab_map]
    return vocab_map


def merge_any(cols: np.ndarray) -> np.ndarray:
    """(N, M) labels in {1, 0, NaN} -> (N,): 1 if any is 1, else 0 if all are 0, else NaN."""
    any_pos = np.any(cols == 1, axis=1)
    all_neg = np.all(cols == 0, axis=1)
    out = np.full(cols.shape[0], np.nan, dtype=np.float32)
    out[all_neg] = 0.0
    out[any_pos] = 1.0
    return out


def merge_columns(
    findings: Sequence[str],
    labels: np.ndarray,
    vocab_map: Mapping[str, str | None] | str,
    keep_unmapped: bool = True,
) -> tuple[list[str], np.ndarray]:
    """Apply `vocab_map` to (findings, labels (N, K)) -> (new findings, new labels (N, K')).

    A source mapped to None is dropped; sources not in the map are kept as they are (or dropped
    when keep_unmapped=False). Targets keep the order of their first source.
    """
    mapping = resolve_map(vocab_map)
    unknown = [k for k in mapping if k not in findings]
    if unknown and not (set(mapping) & set(findings)):
        raise UserError(
            f"relabel map names none of the dataset findings: map keys {sorted(mapping)}; "
            f"dataset findings {list(findings)}"
        )
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(findings):
        target = mapping[name] if name in mapping else (name if keep_unmapped else None)
        if target is not None:
            groups.setdefault(target, []).append(j)
    new_findings = list(groups)
    new_labels = np.empty((labels.shape[0], len(new_findings)), dtype=np.float32)
    for k, target in enumerate(new_findings):
        new_labels[:, k] = merge_any(labels[:, groups[target]])
    return new_findings, new_labels
