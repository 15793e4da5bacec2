"""Extract entities and CheXpert-14 labels from the report texts of a CSV file.

Output CSV: the id column, the label columns of the chosen scheme (`labels.columns`: the 14
snake_case CheXpert columns, "1.0" / "0.0" / "-1.0", blank when unmentioned, as in
mimic-cxr-2.0.0-chexpert.csv, then `no_finding_chexpert`, then with "chexpert14+" the extra columns
of `labels.PLUS_COLUMNS`) and an `entities` column holding a JSON list of Entity dicts. With several text columns (e.g. findings + impression) each column is read as one
section named after it, and entities are merged by key across sections (`merge_entities`).

Rows are streamed (constant memory); the output is written to a temporary file in the target
folder and renamed into place only when complete.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable

from syncxr.errors import UserError
from syncxr.fsio import atomic_path
from syncxr.records import Entity
from syncxr.text.base import Extractor
from syncxr.text.lexicon_extractor import LexiconExtractor
from syncxr.text.merge import merge_entities
from syncxr.text.labels import SCHEMES, columns, label_vector
from syncxr.vocab import Ontology, load_ontology

log = logging.getLogger(__name__)

ENTITIES_COLUMN = "entities"
_MISSING_TEXT = {"", "nan", "none", "null", "n/a"}  # cells that mean "no report text"
_FORMAT = {1.0: "1.0", 0.0: "0.0", -1.0: "-1.0", None: ""}


def _raise_field_limit() -> None:
    # Some report exports hold very long cells; the csv module refuses fields over 128 KiB by default.
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def _open_reader(path: Path, needed: list[str]) -> tuple[csv.DictReader, object]:
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; pass an existing CSV file with --in") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}); check the path and its permissions") from None
    reader = csv.DictReader(fh)
    try:
        header = reader.fieldnames
    except (csv.Error, UnicodeDecodeError) as e:
        fh.close()
        raise UserError(f"{path}: not a readable UTF-8 CSV file ({e})") from None
    if not header:
        fh.close()
        raise UserError(f"{path}: the file is empty; expected a CSV header with columns {needed}")
    missing = [c for c in needed if c not in header]
    if missing:
        fh.close()
        raise UserError(
            f"{path}: missing column(s) {missing}; the file has columns {list(header)}. "
            "Pass the right names with --text-columns / --id-column."
        )
    return reader, fh


def _text(cell: str | None) -> str:
    if cell is None or cell.strip().lower() in _MISSING_TEXT:
        return ""
    return cell


def _row_entities(extractor: Extractor, row: dict[str, str | None], text_columns: list[str]) -> list[Entity]:
    ents: list[Entity] = []
    for col in text_columns:
        text = _text(row.get(col))
        if text:
            for e in extractor.extract(text, col):
                e.section = e.section or col
                ents.append(e)
    return merge_entities(ents)


def extract_csv(
    in_path: str | Path,
    text_columns: list[str],
    id_column: str,
    out_path: str | Path,
    extractor: Extractor | None = None,
    ontology: Ontology | None = None,
    progress: Callable[[int], None] | None = None,
    labels: str = "chexpert14",
    strict: bool = False,
) -> dict:
    """Read `text_columns` of each row of `in_path`, write labels + entities to `out_path`.

    Returns stats: rows, empty_rows (no text in any text column), failed (ids of rows whose
    extraction raised; written with blank labels), entities, per-label counts, seconds, rows_per_s,
    out. `progress`, if given, is called with the number of rows done every 1000 rows and at the end.
    `labels`: the label scheme, "chexpert14" or "chexpert14+" (text/labels.py).
    Duplicate and empty ids are counted (`duplicate_ids`, `empty_ids`: row numbers, 1-based) and
    logged; with `strict` they are refused. Raises UserError for a missing/unreadable/empty file,
    missing columns, an --out that is the input or a folder (nothing is written).
    """
    if labels not in SCHEMES:
        raise UserError(f"unknown label set {labels!r}; expected one of {', '.join(SCHEMES)}")
    keys = columns(labels)
    in_path, out_path = Path(in_path), Path(out_path)
    text_columns = list(text_columns)
    if not text_columns:
        raise UserError("no text columns given; pass e.g. --text-columns findings,impression")
    extractor = extractor or LexiconExtractor(ontology)
    onto = ontology or getattr(extractor, "ontology", None) or load_ontology()
    _check_out(in_path, out_path)
    _raise_field_limit()
    reader, fh = _open_reader(in_path, [id_column, *dict.fromkeys(text_columns)])
    stats = {
        "rows": 0, "empty_rows": 0, "failed": [], "entities": 0, "duplicate_ids": [], "empty_ids": [],
        "labels": {k: {"positive": 0, "negative": 0, "uncertain": 0} for k in keys},
    }
    seen: set[str] = set()
    t0 = time.perf_counter()
    with fh, atomic_path(out_path) as tmp_path, open(tmp_path, "w", newline="", encoding="utf-8") as tmp:
        writer = csv.writer(tmp)
        writer.writerow([id_column, *keys, ENTITIES_COLUMN])
        for row in _rows(reader, in_path):
            _check_id(row.get(id_column) or "", seen, stats, in_path, id_column, strict)
            _one_row(row, writer, extractor, onto, text_columns, id_column, stats, labels)
            if progress and stats["rows"] % 1000 == 0:
                progress(stats["rows"])
        if stats["rows"] == 0:
            raise UserError(f"{in_path}: the file has a header but no rows; nothing to extract")
    _warn_ids(stats, in_path, id_column)
    if progress:
        progress(stats["rows"])
    secs = time.perf_counter() - t0
    stats.update(seconds=round(secs, 3), rows_per_s=round(stats["rows"] / secs, 1) if secs > 0 else 0.0, out=str(out_path))
    log.info("extracted %d rows from %s into %s (%.0f rows/s)", stats["rows"], in_path, out_path, stats["rows_per_s"])
    return stats


def _check_out(in_path: Path, out_path: Path) -> None:
    """Refuse an --out that would overwrite the input or that is a folder (before anything is read)."""
    if out_path.is_dir():
        raise UserError(f"--out {out_path} is a folder; give the path of the labels CSV to write, e.g. {out_path / 'labels.csv'}")
    if in_path.exists() and out_path.exists() and in_path.resolve() == out_path.resolve():
        raise UserError(f"--out {out_path} is the input file (--in); writing there would overwrite it. Choose another --out path")


def _check_id(row_id: str, seen: set[str], stats: dict, path: Path, id_column: str, strict: bool) -> None:
    """Count empty and duplicate ids (row numbers are 1-based data rows); refuse them when strict."""
    line = stats["rows"] + 1
    if not row_id.strip():
        stats["empty_ids"].append(line)
        problem = f"row {line} has an empty {id_column!r}"
    elif row_id in seen:
        stats["duplicate_ids"].append(line)
        problem = f"row {line} repeats {id_column} {row_id!r}"
    else:
        seen.add(row_id)
        return
    if strict:
        raise UserError(f"{path}: {problem}; ids must be unique and non-empty (--strict). Fix the file or drop --strict")


def _warn_ids(stats: dict, path: Path, id_column: str) -> None:
    for key, what in (("empty_ids", "an empty"), ("duplicate_ids", "a duplicate")):
        rows = stats[key]
        if rows:
            log.warning("%s: %d row(s) with %s %r (rows %s%s); pass --strict to refuse them",
                        path, len(rows), what, id_column, rows[:5], ", ..." if len(rows) > 5 else "")


def _rows(reader: csv.DictReader, path: Path):
    try:
        yield from reader
    except (csv.Error, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable CSV near line {reader.line_num} ({e}); is it UTF-8 CSV?") from None


def _one_row(
    row, writer, extractor: Extractor, onto: Ontology, text_columns, id_column: str, stats: dict, scheme: str
) -> None:
    stats["rows"] += 1
    row_id = row.get(id_column) or ""
    if not any(_text(row.get(c)) for c in text_columns):
        stats["empty_rows"] += 1
    try:
        ents = _row_entities(extractor, row, text_columns)
        labels = label_vector(ents, onto, scheme)
    except Exception as e:  # one bad row is data, not a crash: blank labels, reason logged and counted
        log.warning("row %d (id %r): extraction failed: %s: %s", stats["rows"], row_id, type(e).__name__, e)
        stats["failed"].append(row_id)
        ents, labels = [], dict.fromkeys(columns(scheme))
    stats["entities"] += len(ents)
    for k, v in labels.items():
        if v is not None:
            stats["labels"][k][{1.0: "positive", 0.0: "negative", -1.0: "uncertain"}[v]] += 1
    entities_json = json.dumps([e.to_dict() for e in ents], separators=(",", ":"))
    writer.writerow([row_id, *(_FORMAT[v] for v in labels.values()), entities_json])
