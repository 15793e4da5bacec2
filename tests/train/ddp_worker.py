"""Run by `torchrun --nproc_per_node 2` from test_ddp.py: train, then every rank writes its
per-step losses and a digest of its weights so the test can check the ranks stayed in sync."""

import json
import os
import sys
from pathlib import Path

from syncxr.train.api import run
from syncxr.train.config import load_config

if __name__ == "__main__":
    cfg_path, out, overrides = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    result = run(load_config(cfg_path, overrides), out, os.environ.get("SYNCXR_TEST_RESUME") or None)
    digest = {k: float(v.double().sum()) for k, v in result.model.state_dict().items()}
    (out / f"rank{os.environ['RANK']}.json").write_text(json.dumps({"losses": result.losses, "digest": digest}))
