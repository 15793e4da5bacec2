"""Image-report consistency of a dataset: does the image show what the report asserts?

Per asserted (present or hedged) ABNORMALITY/DISEASE entity of a row's sampled set:
- linked: a non-empty mask named after the concept (datasets from before masks carried concept
  names are linked through the concept's `render` id);
- visible: the mask's mean grey level differs from a ring around it by at least the ring's
  standard deviation or by `GREY_FLOOR` grey levels;
- on its side: for an entity with a laterality its concept allows, most mask pixels in that image
  half (PA: patient right = image left), or at least 15% in each half for "bilateral".
Used by the dataset card and by benchmarks/world_consistency.py.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from syncxr.vocab import Ontology

FINDING_TYPES = ("ABNORMALITY", "DISEASE")
RING_PX = 4
GREY_FLOOR = 6.0
BILATERAL_MIN_SHARE = 0.15


def decode(data: bytes) -> np.ndarray:
    """A dataset's own PNG (image or 1-bit mask), decoded as the image stage encoded it."""
    from syncxr.image.png import decode_png

    return decode_png(data)


def ring_contrast(image: np.ndarray, mask: np.ndarray, px: int = RING_PX) -> tuple[float, float]:
    """(|mean inside - mean of the ring|, ring std) in grey levels."""
    ring = ndimage.binary_dilation(mask, iterations=px) & ~mask
    if not ring.any() or not mask.any():
        return 0.0, 0.0
    around = image[ring].astype(float)
    return abs(float(image[mask].astype(float).mean()) - float(around.mean())), float(around.std())


def visible(image: np.ndarray, mask: np.ndarray) -> bool:
    """The ring test; at least one grey level in any case (a flat ring has no std to beat)."""
    diff, std = ring_contrast(image, mask)
    return diff >= GREY_FLOOR or diff >= max(std, 1.0)


def midline_of(qc_json: str | None) -> float:
    """The patient's midline (share of the width) a generator recorded in the sample's qc scores,
    else the image's middle."""
    try:
        value = float(json.loads(qc_json or "{}").get("patient_midline_x", 0.5))
    except (ValueError, TypeError, AttributeError):
        return 0.5
    return value if 0.0 < value < 1.0 else 0.5


def on_side(mask: np.ndarray, side: str, midline: float = 0.5) -> bool:
    """True when the mask lies on the patient's `side` (PA film: patient right = image left).
    `midline`: the patient's midline as a share of the width (the phantom records it in the
    sample's qc scores as `patient_midline_x`; the image's middle when unknown)."""
    w = mask.shape[1]
    cut = min(max(int(round(midline * w)), 0), w)
    share_image_left = mask[:, :cut].sum() / max(int(mask.sum()), 1)
    if side == "bilateral":
        return BILATERAL_MIN_SHARE <= share_image_left <= 1.0 - BILATERAL_MIN_SHARE
    return share_image_left > 0.5 if side == "right" else share_image_left < 0.5


@dataclass
class Consistency:
    """Counts over rows; `add` one row at a time (streaming)."""

    ontology: Ontology
    asserted: Counter = field(default_factory=Counter)  # concept -> asserted mentions
    linked: Counter = field(default_factory=Counter)  # concept -> of those, with a non-empty mask
    visible: Counter = field(default_factory=Counter)  # concept -> of the linked, visible
    sided: int = 0
    sided_ok: int = 0
    implausible_sides: int = 0  # sampled laterality the concept does not allow
    rows: int = 0
    contradictory_rows: int = 0  # rows whose extracted entities hold a conflicting pair
    _conflicts: Any = None

    def add(self, entities_json: str, masks: list[dict[str, Any]], image_png: bytes, extracted_json: str = "",
            midline: float = 0.5) -> None:
        by = self.ontology.by_name
        if extracted_json:
            self.contradictory_rows += bool(self.contradictions(extracted_json))
        named = {m["name"]: m["png"] for m in masks}
        image = None
        self.rows += 1
        for e in json.loads(entities_json):
            c = by.get(e["name"])
            if c is None or c.type not in FINDING_TYPES or e.get("assertion") == "absent":
                continue
            self.asserted[c.name] += 1
            data = named.get(c.name) or (named.get(c.render) if c.render else None)
            mask = decode(data) if data else None
            if mask is None or not mask.any():
                continue
            self.linked[c.name] += 1
            image = decode(image_png) if image is None else image
            self.visible[c.name] += visible(image, mask)
            side = (e.get("attributes") or {}).get("laterality") if "laterality" in c.attributes else None
            if side and side in c.allowed("laterality"):
                self.sided += 1
                self.sided_ok += on_side(mask, side, midline)
            elif side:
                self.implausible_sides += 1

    def contradictions(self, extracted_json: str) -> list[tuple[str, str]]:
        """Conflicting pairs (text.sample.Conflicts) among a row's extracted entity keys."""
        if self._conflicts is None:
            from syncxr.vocab.conflicts import Conflicts  # imported late: the card needs it only here

            self._conflicts = Conflicts(self.ontology)
        keys = sorted({f"{e['name']}|{e['type']}" for e in json.loads(extracted_json) if e["name"] in self.ontology.by_name})
        return [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:] if self._conflicts.conflict(a, b)]

    def summary(self) -> dict[str, float]:
        n, k = sum(self.asserted.values()), sum(self.linked.values())
        return {
            "asserted_abnormal_entities": n,
            "with_mask": k / n if n else float("nan"),
            "masks_visible": sum(self.visible.values()) / k if k else float("nan"),
            "sided_correct": self.sided_ok / self.sided if self.sided else float("nan"),
            "implausible_sides_sampled": self.implausible_sides,
            "contradictory_reports": self.contradictory_rows,
        }

    def per_concept(self) -> list[tuple[str, int, float]]:
        """(concept, asserted mentions, share with a non-empty mask), most asserted first."""
        return [(c, n, self.linked[c] / n) for c, n in self.asserted.most_common()]
