"""The syncxr dataset shard schema (one row per sample) and rejects schema.

A dataset folder holds:
  shards/shard-00000.parquet ...   accepted samples (SHARD_SCHEMA)
  rejects/shard-00000.parquet ...  rejected samples with stage + reason (REJECT_SCHEMA)
  manifest.json                    resolved config, versions, per-shard sha256, counts
  card.md, card.html               the dataset card

Readers outside syncxr: pandas.read_parquet("D/shards"), DuckDB, or
datasets.load_dataset("parquet", data_files="D/shards/*.parquet").
"""

from __future__ import annotations

import pyarrow as pa

from syncxr.records import CHEXPERT14_SNAKE

MASK_TYPE = pa.struct([("name", pa.string()), ("png", pa.binary())])

SHARD_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("index", pa.int64()),
        ("seed", pa.int64()),
        ("image_png", pa.binary()),  # 8-bit grayscale PNG
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("findings", pa.string()),
        ("impression", pa.string()),
        ("report", pa.string()),  # "FINDINGS: ...\n\nIMPRESSION: ..."
        ("entities", pa.string()),  # JSON list of Entity dicts: the sampled (target) set
        ("extracted", pa.string()),  # JSON list of Entity dicts: what verification read back
        ("masks", pa.list_(MASK_TYPE)),  # per rendered finding: 1-bit PNG mask, same size as image
        # 1 / 0 / -1, null = unmentioned. no_finding is clinical (0 when any abnormality is asserted);
        # no_finding_chexpert is CheXpert's strict value (rules: syncxr/text/labels.py).
        *[(name, pa.float32()) for name in CHEXPERT14_SNAKE],
        ("no_finding_chexpert", pa.float32()),
        ("qc", pa.string()),  # JSON dict of QC scores (e.g. bank_max_sim, contrast)
        ("write_attempts", pa.int32()),
        ("image_attempts", pa.int32()),
        ("backends", pa.string()),  # JSON dict stage -> backend id
        ("history", pa.string()),  # JSON list of retry reasons before acceptance, e.g. "image#1: qc_bank_similarity"
    ]
)

REJECT_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("index", pa.int64()),
        ("seed", pa.int64()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("entities", pa.string()),
        ("findings", pa.string()),
        ("impression", pa.string()),
        ("history", pa.string()),  # JSON list of retry reasons
        ("write_attempts", pa.int32()),
        ("image_attempts", pa.int32()),
    ]
)
