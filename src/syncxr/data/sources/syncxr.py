"""syncxr dataset folder source: D/shards/*.parquet (SHARD_SCHEMA), PNG decoded lazily."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from syncxr.data.pairs import PairSource, Section, check_columns, choose_text, decode_image
from syncxr.errors import UserError


class SyncxrShards(PairSource):
    """Pairs from a syncxr dataset folder. `cache_shards`: image columns kept in memory (LRU)."""

    kind = "syncxr"

    def __init__(self, path: str | Path, section: Section = "both", cache_shards: int = 64) -> None:
        root = path
        super().__init__(str(root))
        shard_dir = Path(root) / "shards"
        self.files = sorted(shard_dir.glob("*.parquet"))
        if not self.files:
            raise UserError(
                f"{root}: no shards/*.parquet found; give a syncxr dataset folder (made by `syncxr generate`)"
            )
        self.cache_shards = cache_shards
        self._cache: OrderedDict[int, pa.ChunkedArray] = OrderedDict()
        self._rows: list[tuple[int, int]] = []  # (shard index, row in shard)
        self._ids: list[str] = []
        for s, path in enumerate(self.files):
            self._read_texts(s, path, section)
        self.finish()

    def _read_texts(self, s: int, path: Path, section: Section) -> None:
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"{path}: not a readable parquet file ({exc}); regenerate or remove it") from exc
        check_columns(path, names, ["sample_id", "image_png", "findings", "impression"])
        table = pq.read_table(path, columns=["sample_id", "findings", "impression"])
        cols = table.to_pydict()
        for r, (sid, f, i) in enumerate(zip(cols["sample_id"], cols["findings"], cols["impression"])):
            text = choose_text(f, i, section)
            if not text:
                self.skip("empty_text", f"{path.name}:{sid}")
                continue
            self._rows.append((s, r))
            self._ids.append(str(sid))
            self._texts.append(text)

    def _images(self, s: int) -> pa.ChunkedArray:
        if s in self._cache:
            self._cache.move_to_end(s)
            return self._cache[s]
        col = pq.read_table(self.files[s], columns=["image_png"]).column("image_png")
        self._cache[s] = col
        if len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return col

    def _load_image(self, i: int) -> np.ndarray:
        s, r = self._rows[i]
        data = self._images(s)[r].as_py()
        if not data:
            raise ValueError("empty image_png")
        return decode_image(data)

    def _name(self, i: int) -> str:
        return f"{self.files[self._rows[i][0]].name}:{self._ids[i]}"

    def _select(self, keep: list[int]) -> None:
        super()._select(keep)
        self._rows = [self._rows[i] for i in keep]
        self._ids = [self._ids[i] for i in keep]
