"""A study step: one unit of resumable work with a config hash (see run.py for how steps run)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional


@dataclass
class Step:
    """One unit of work: `action(folder, resume)` fills `folder` and returns what to record."""

    name: str  # also the folder path relative to out ("train/real-convirt-s0")
    kind: str  # real | synthetic | benchmark | audit | train | eval
    config: dict[str, Any]  # everything that decides the output, incl. upstream hashes
    action: Optional[Callable[[Path, bool], dict[str, Any]]]  # None: an external input, nothing to do
    marker: str  # file inside the folder that exists once the step is done
    command: str  # the equivalent stand-alone syncxr command

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()[:16]
