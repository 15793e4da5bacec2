"""Generic CSV source: one row per pair, an image path column (relative to the CSV's folder or
absolute) and a text column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from syncxr.data.pairs import PairSource, check_columns, decode_image
from syncxr.errors import UserError


class CsvPairs(PairSource):
    kind = "csv"

    def __init__(self, path: str | Path, image_col: str = "image", text_col: str = "text") -> None:
        super().__init__(str(path))
        p = Path(path)
        if not p.is_file():
            raise UserError(f"CSV {p} not found; give a CSV with columns {image_col!r} and {text_col!r}")
        try:
            df = pd.read_csv(p, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{p}: not a readable CSV ({exc})") from exc
        check_columns(p, list(df.columns), [image_col, text_col])
        self._paths: list[Path] = []
        for row, (img, text) in enumerate(zip(df[image_col], df[text_col]), start=2):  # 1 = header
            text = " ".join(str(text).split())
            img_path = (p.parent / img) if img else None
            if not text:
                self.skip("empty_text", f"line {row}")
            elif img_path is None or not img_path.is_file():
                self.skip("missing_image", f"line {row}: {img or '(empty)'}")
            else:
                self._paths.append(img_path)
                self._texts.append(text)
        self.finish()

    def _load_image(self, i: int) -> np.ndarray:
        return decode_image(self._paths[i])

    def _name(self, i: int) -> str:
        return str(self._paths[i])

    def _select(self, keep: list[int]) -> None:
        super()._select(keep)
        self._paths = [self._paths[i] for i in keep]
