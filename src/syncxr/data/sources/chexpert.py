"""CheXpert (Irvin et al. 2019) in its official layout, and the CheXpert 5x200 protocol.

Layout: `valid.csv` / `test.csv` / `train.csv` with columns Path, Sex, Age, Frontal/Lateral, AP/PA
and the 14 labels (1.0 positive, 0.0 negative, -1.0 uncertain, blank = not mentioned). Paths
look like `CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg`; `data_dir` may be
the folder holding `CheXpert-v1.0-small/` or that folder itself.

Uncertainty policy (`uncertain=`): "ignore" (U-ignore: -1 -> NaN, the default for evaluation),
"zeros" (-1 -> 0), "ones" (-1 -> 1). Blanks are NaN unless `blank="zero"`.

5x200 (`chexpert5x200`, as in GLoRIA/MedCLIP): for each of Atelectasis, Cardiomegaly,
Consolidation, Edema, Pleural Effusion, `n_per_class` frontal images positive (1.0) for that
class and for none of the other four (0.0 or blank; an uncertain -1.0 on another class excludes
the image), drawn with a seeded RNG from the rows sorted by Path. A multiclass dataset.
With `indices_path`, the chosen paths are saved there as JSON and reused when the file exists.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data.relabel import native_to_shared
from syncxr.data.sources.base import EvalDataset, find_file, read_csv, resolve_paths
from syncxr.errors import UserError
from syncxr.fsio import write_text_atomic
from syncxr.records import CHEXPERT14

log = logging.getLogger(__name__)

ROOT_NAMES = ("CheXpert-v1.0-small", "CheXpert-v1.0")
FIVE = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
UNCERTAIN_POLICIES = {"ignore": np.nan, "zeros": 0.0, "ones": 1.0}


def _policy_value(uncertain: str) -> float:
    key = uncertain.lower().removeprefix("u-").removeprefix("u_")
    if key not in UNCERTAIN_POLICIES:
        raise UserError(f"chexpert: uncertain={uncertain!r}; expected one of {sorted(UNCERTAIN_POLICIES)}")
    return UNCERTAIN_POLICIES[key]


def read_table(data_dir: Path, split: str) -> tuple[pd.DataFrame, Path, list[str]]:
    """(rows, csv path, absolute image paths) of one split's CSV; label values are checked."""
    name = f"{split}.csv"
    csv = find_file(data_dir, [name] + [f"{r}/{name}" for r in ROOT_NAMES], f"CheXpert {name}")
    df = read_csv(csv, ["Path", *CHEXPERT14])
    for col in CHEXPERT14:
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = (vals.isna() & df[col].notna()) | ~(vals.isin([1.0, 0.0, -1.0]) | vals.isna())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(
                f"{csv}: line {row + 2}, column {col!r}: value {str(df[col].iloc[row])!r}; "
                "expected 1.0, 0.0, -1.0 or blank"
            )
        df[col] = vals.astype(np.float32)
    # Paths start with the CheXpert root folder name; resolve against data_dir or its parent.
    paths = resolve_paths(
        df["Path"].astype(str).tolist(), [data_dir, csv.parent.parent, csv.parent], str(csv)
    )
    return df, csv, paths


def _view(row: pd.Series) -> str:
    fl = row.get("Frontal/Lateral")
    fl = fl if isinstance(fl, str) else ""
    path = str(row["Path"]).lower()
    if fl == "Lateral" or (not fl and "lateral" in path):
        return "LATERAL"
    appa = row.get("AP/PA")
    return str(appa) if isinstance(appa, str) and appa else "FRONTAL"


def _meta(df: pd.DataFrame, paths: list[str], split: str) -> pd.DataFrame:
    pid = df["Path"].astype(str).map(lambda p: (re.search(r"(patient\d+)", p) or [""])[0])
    meta = pd.DataFrame(
        {
            "path": paths,
            "image_id": df["Path"].astype(str).to_numpy(),
            "view": df.apply(_view, axis=1).to_numpy() if len(df) else [],
            "patient_id": pid.to_numpy(),
            "split": split,
        }
    )
    for col in ("Sex", "Age"):
        if col in df.columns:
            meta[col.lower()] = df[col].to_numpy()
    return meta


def load_chexpert(
    data_dir: str | Path,
    split: str = "valid",
    uncertain: str = "ignore",
    blank: str = "nan",
    strict_images: bool = True,
) -> EvalDataset:
    """CheXpert `split` ("valid", "test" or "train") with the 14 labels under an uncertainty policy."""
    if blank not in ("nan", "zero"):
        raise UserError(f"chexpert: blank={blank!r}; expected 'nan' or 'zero'")
    u_value = _policy_value(uncertain)
    df, _, paths = read_table(Path(data_dir), split)
    raw = df[list(CHEXPERT14)].to_numpy(dtype=np.float32)  # (N, 14)
    labels = np.where(raw == -1.0, np.float32(u_value), raw)
    if blank == "zero":
        labels = np.where(np.isnan(raw), np.float32(0.0), labels)
    findings = [native_to_shared("chexpert", c) for c in CHEXPERT14]
    return EvalDataset("chexpert", findings, labels, _meta(df, paths, split), strict_images=strict_images)


def select_5x200(raw: np.ndarray, n_per_class: int, seed: int) -> dict[int, np.ndarray]:
    """raw (N, 5) CheXpert values -> {class: sorted row indices} of exclusive positives."""
    pos = raw == 1.0
    others_clear = (np.nan_to_num(raw, nan=0.0) == 0.0)  # 0.0 or blank
    rng = np.random.default_rng(seed)
    chosen: dict[int, np.ndarray] = {}
    for c in range(raw.shape[1]):
        rest = np.delete(others_clear, c, axis=1).all(axis=1)
        cand = np.flatnonzero(pos[:, c] & rest)
        if len(cand) < n_per_class:
            raise UserError(
                f"chexpert5x200: only {len(cand)} images are positive for exactly {FIVE[c]!r} "
                f"among the five; need n_per_class={n_per_class}. Use a larger split or a smaller n_per_class."
            )
        chosen[c] = np.sort(rng.choice(cand, size=n_per_class, replace=False))
    return chosen


def load_chexpert5x200(
    data_dir: str | Path,
    split: str = "train",
    n_per_class: int = 200,
    seed: int = 0,
    indices_path: str | Path | None = None,
    strict_images: bool = True,
) -> EvalDataset:
    """The 5x200 multiclass protocol (see the module docstring)."""
    df, csv, paths = read_table(Path(data_dir), split)
    meta_all = _meta(df, paths, split)
    frontal = np.flatnonzero((meta_all["view"] != "LATERAL").to_numpy())
    raw = df[list(FIVE)].to_numpy(dtype=np.float32)[frontal]  # (F, 5)
    # Sort by Path so the selection depends on the seed, not on the CSV's row order.
    order = np.argsort(df["Path"].to_numpy()[frontal], kind="stable")
    saved = Path(indices_path) if indices_path is not None else None
    if saved is not None and saved.is_file():
        rows, cls = _load_indices(saved, df)
    else:
        chosen = select_5x200(raw[order], n_per_class, seed)
        rows = np.concatenate([frontal[order[chosen[c]]] for c in range(len(FIVE))])
        cls = np.repeat(np.arange(len(FIVE)), [len(chosen[c]) for c in range(len(FIVE))])
        if saved is not None:
            _save_indices(saved, df, rows, cls, split=split, seed=seed)
    labels = np.zeros((len(rows), len(FIVE)), dtype=np.float32)
    labels[np.arange(len(rows)), cls] = 1.0
    meta = meta_all.iloc[rows].reset_index(drop=True)
    findings = [native_to_shared("chexpert", c) for c in FIVE]
    meta["class"] = [findings[c] for c in cls]
    log.info("chexpert5x200: %d images from %s (seed %d)", len(rows), csv, seed)
    return EvalDataset("chexpert5x200", findings, labels, meta, task="multiclass", strict_images=strict_images)


def _save_indices(path: Path, df: pd.DataFrame, rows: np.ndarray, cls: np.ndarray, **info: object) -> None:
    doc = {"protocol": "chexpert5x200", **info, "classes": list(FIVE),
           "paths": [[str(df["Path"].iloc[r]), int(c)] for r, c in zip(rows, cls)]}
    write_text_atomic(path, json.dumps(doc, indent=1))


def _load_indices(path: Path, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    try:
        doc = json.loads(path.read_text())
        pairs = doc["paths"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a chexpert5x200 indices file ({e}); delete it to reselect") from None
    where = {p: i for i, p in enumerate(df["Path"].astype(str))}
    missing = [p for p, _ in pairs if p not in where]
    if missing:
        raise UserError(f"{path}: {len(missing)} saved paths are not in the CSV (first: {missing[0]!r})")
    return np.array([where[p] for p, _ in pairs], dtype=np.int64), np.array([c for _, c in pairs])
