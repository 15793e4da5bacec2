"""MIMIC-CXR-JPG source.

Layout (as distributed on PhysioNet):
    <root>/mimic-cxr-2.0.0-metadata.csv   dicom_id, subject_id, study_id, ViewPosition, ...
    <root>/mimic-cxr-2.0.0-split.csv      dicom_id, study_id, subject_id, split (optional)
    <root>/files/pXX/pSUBJECT/sSTUDY/DICOM.jpg
    reports: <root>/files/pXX/pSUBJECT/sSTUDY.txt (free text with FINDINGS:/IMPRESSION:), or a
    sectioned CSV (study_id or study, findings, impression), e.g. mimic_cxr_sectioned.csv.
"""

from __future__ import annotations

import logging

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from syncxr.data.pairs import PairSource, Section, check_columns, choose_text, decode_image
from syncxr.errors import UserError
from syncxr.fsio import OUTSIDE_ROOT_HINT, is_inside, read_csv

METADATA = "mimic-cxr-2.0.0-metadata.csv"
SPLIT = "mimic-cxr-2.0.0-split.csv"
SECTIONED = "mimic_cxr_sectioned.csv"
_HEADER = re.compile(r"^\s*([A-Z][A-Z &/]+):", re.MULTILINE)


def parse_report(text: str) -> dict[str, str]:
    """Free-text MIMIC report -> {"findings": ..., "impression": ...} (missing -> "")."""
    out = {"findings": "", "impression": ""}
    heads = list(_HEADER.finditer(text))
    for k, m in enumerate(heads):
        name = m.group(1).strip().lower()
        if name in out:
            end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
            out[name] = " ".join(text[m.end() : end].split())
    return out


def _read_csv(path: Path) -> pd.DataFrame:
    return read_csv(path, dtype=str, keep_default_na=False)


def _study_key(s: str) -> str:
    return s.strip().lstrip("sS")


log = logging.getLogger(__name__)


class MimicCXR(PairSource):
    kind = "mimic"

    def __init__(
        self, path: str | Path, section: Section = "both", views: Sequence[str] = ("PA", "AP"),
        split: str = "train", reports: str | Path | None = None, allow_outside_root: bool = False,
    ) -> None:
        super().__init__(str(path))
        self.root = Path(path)
        meta_path = self.root / METADATA
        if not meta_path.is_file():
            raise UserError(f"{self.root}: {METADATA} not found; give the MIMIC-CXR-JPG root folder")
        meta = _read_csv(meta_path)
        check_columns(meta_path, list(meta.columns), ["dicom_id", "subject_id", "study_id", "ViewPosition"])
        meta = self._filter(meta, views, split)
        sections = self._sections_table(reports)
        self._paths: list[Path] = []
        cache: dict[str, dict[str, str] | None] = {}
        for row in meta.itertuples(index=False):
            subj, study, dicom = row.subject_id, _study_key(row.study_id), row.dicom_id
            folder = self.root / "files" / f"p{subj[:2]}" / f"p{subj}"
            img = folder / f"s{study}" / f"{dicom}.jpg"
            if not allow_outside_root and not is_inside(img, self.root):  # '../' or '/' in an id
                self.skip("outside_root", f"dicom_id {dicom!r} (subject {subj!r}, study {study!r})")
                continue
            if study not in cache:
                cache[study] = sections.get(study) if sections is not None else self._read_txt(folder / f"s{study}.txt")
            secs = cache[study]
            if secs is None:
                self.skip("missing_report", f"s{study}")
                continue
            text = choose_text(secs["findings"], secs["impression"], section)
            if not text:
                self.skip(f"empty_{section}", f"s{study}")
            elif not img.is_file():
                self.skip("missing_image", str(img.relative_to(self.root)))
            else:
                self._paths.append(img)
                self._texts.append(text)
        if self.skipped["outside_root"]:
            log.warning("%s: %d row(s) whose ids lead outside the dataset root; %s",
                        self.root, self.skipped["outside_root"], OUTSIDE_ROOT_HINT)
        self.finish()

    def _filter(self, meta: pd.DataFrame, views: Sequence[str], split: str) -> pd.DataFrame:
        if views:
            keep = meta["ViewPosition"].isin(list(views))
            self.skipped["other_view"] += int((~keep).sum())
            meta = meta[keep]
        if split != "all":
            split_path = self.root / SPLIT
            if not split_path.is_file():
                raise UserError(f"{self.root}: {SPLIT} not found; add it or use split: all")
            splits = _read_csv(split_path)
            check_columns(split_path, list(splits.columns), ["dicom_id", "split"])
            wanted = set(splits.loc[splits["split"] == split, "dicom_id"])
            keep = meta["dicom_id"].isin(wanted)
            self.skipped["other_split"] += int((~keep).sum())
            meta = meta[keep]
        return meta

    def _sections_table(self, reports: str | Path | None) -> dict[str, dict[str, str]] | None:
        path = Path(reports) if reports else self.root / SECTIONED
        if not path.is_file():
            if reports:
                raise UserError(f"sectioned reports CSV {path} not found")
            return None  # fall back to per-study .txt reports
        df = _read_csv(path)
        key = "study_id" if "study_id" in df.columns else "study"
        check_columns(path, list(df.columns), [key, "findings", "impression"])
        return {
            _study_key(s): {"findings": f, "impression": i}
            for s, f, i in zip(df[key], df["findings"], df["impression"])
        }

    @staticmethod
    def _read_txt(path: Path) -> dict[str, str] | None:
        try:
            return parse_report(path.read_text(errors="replace"))
        except FileNotFoundError:
            return None

    def _load_image(self, i: int) -> np.ndarray:
        return decode_image(self._paths[i])

    def _name(self, i: int) -> str:
        return str(self._paths[i].relative_to(self.root))

    def _select(self, keep: list[int]) -> None:
        super()._select(keep)
        self._paths = [self._paths[i] for i in keep]
