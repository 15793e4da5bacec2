"""Generic CSV source: one row per pair, an image path column (relative to the CSV's folder) and a
text column. An image path that resolves outside the CSV's folder (absolute, '../', a symlink out)
is skipped as 'outside_root' unless `allow_outside_root`."""

from __future__ import annotations

from pathlib import Path

import logging

import numpy as np

from syncxr.data.pairs import PairSource, check_columns, decode_image
from syncxr.errors import UserError
from syncxr.fsio import OUTSIDE_ROOT_HINT, is_inside, read_csv

log = logging.getLogger(__name__)


class CsvPairs(PairSource):
    kind = "csv"

    def __init__(self, path: str | Path, image_col: str = "image", text_col: str = "text",
                 allow_outside_root: bool = False) -> None:
        super().__init__(str(path))
        p = Path(path)
        if not p.is_file():
            raise UserError(f"CSV {p} not found; give a CSV with columns {image_col!r} and {text_col!r}")
        df = read_csv(p, dtype=str, keep_default_na=False)
        check_columns(p, list(df.columns), [image_col, text_col])
        self._paths: list[Path] = []
        for row, (img, text) in enumerate(zip(df[image_col], df[text_col]), start=2):  # 1 = header
            text = " ".join(str(text).split())
            img_path = (p.parent / img) if img else None
            if not text:
                self.skip("empty_text", f"line {row}")
            elif img_path is not None and not allow_outside_root and not is_inside(img_path, p.parent):
                self.skip("outside_root", f"line {row}: {img}")
            elif img_path is None or not img_path.is_file():
                self.skip("missing_image", f"line {row}: {img or '(empty)'}")
            else:
                self._paths.append(img_path)
                self._texts.append(text)
        if self.skipped["outside_root"]:
            log.warning("%s: %d image path(s) point outside %s; %s", p, self.skipped["outside_root"], p.parent, OUTSIDE_ROOT_HINT)
        self.finish()

    def _load_image(self, i: int) -> np.ndarray:
        return decode_image(self._paths[i])

    def _name(self, i: int) -> str:
        return str(self._paths[i])

    def _select(self, keep: list[int]) -> None:
        super()._select(keep)
        self._paths = [self._paths[i] for i in keep]
