"""Entity counts of a reference corpus: the long-tailed "before balancing" distribution."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from syncxr.errors import UserError
from syncxr.fsio import read_csv


def read_reports_csv(path: str | Path, text_columns: list[str]) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"reference corpus not found: {p}; expected a CSV with columns {text_columns}")
    df = read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in text_columns if c not in df.columns]
    if missing:
        raise UserError(
            f"{p}: missing column(s) {missing}; the file has {list(df.columns)}. "
            f"Set entities.corpus_text_columns to the report text columns."
        )
    return df


def corpus_entity_counts(path: str | Path, text_columns: list[str], extractor) -> dict[str, int]:
    """Count entity keys (name|TYPE) over all reports; a key counts once per report."""
    df = read_reports_csv(path, text_columns)
    counts: Counter[str] = Counter()
    for row in df[text_columns].itertuples(index=False):
        keys = set()
        for col, text in zip(text_columns, row):
            if text and text.strip():
                keys.update(e.key for e in extractor.extract(text, col))
        counts.update(keys)
    if not counts:
        raise UserError(f"{path}: no entities found in {len(df)} reports; is this a CXR report corpus?")
    return dict(counts)
