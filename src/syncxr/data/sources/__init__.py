"""Dataset sources. Training pairs: syncxr shards, MIMIC-CXR-JPG, generic CSV, and mixes.

    open_data("runs/ds")            # a syncxr dataset folder
    open_data("mimic:/data/mimic")  # MIMIC-CXR-JPG root
    open_data("csv:pairs.csv")      # generic CSV (image, text)
    open_data(DataConfig(...))      # the config's `data:` section (sources + mix ratios)

Source modules are imported lazily so importing this package stays cheap: `PAIR_SOURCES` names
each kind's class (one line per kind); a source's options are the fields of `SourceConfig` its
class accepts (e.g. `views` for mimic), and setting one it does not accept is an error.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from syncxr.errors import UserError
from syncxr.registry import Registry

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from syncxr.data.pairs import PairSource

# One line per kind of training data: name -> "module:class" (imported only when used).
PAIR_SOURCES: Registry["PairSource"] = Registry(
    "training data source",
    {
        "syncxr": "syncxr.data.sources.syncxr:SyncxrShards",
        "mimic": "syncxr.data.sources.mimic:MimicCXR",
        "csv": "syncxr.data.sources.csv_pairs:CsvPairs",
    },
)


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str  # a PAIR_SOURCES name: syncxr | mimic | csv
    path: str
    section: Literal["findings", "impression", "both"] = "both"
    views: list[str] = ["PA", "AP"]  # mimic only
    split: str = "train"  # mimic only: train | validate | test | all
    reports: Optional[str] = None  # mimic only: sectioned reports CSV (default: per-study .txt)
    image_col: str = "image"  # csv only
    text_col: str = "text"  # csv only
    allow_outside_root: bool = False  # mimic, csv: read image paths that resolve outside the dataset root
    # Train on this share of the pairs (data-size scaling). The subset is a fixed seeded draw, and
    # a smaller fraction is a subset of every larger one (25% within 50% within 100%).
    fraction: float = Field(1.0, gt=0.0, le=1.0)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in PAIR_SOURCES:
            raise ValueError(f"unknown source kind {v!r}; valid kinds: {', '.join(PAIR_SOURCES.names())}")
        return v


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(default_factory=list)
    section: Literal["findings", "impression", "both"] = "both"  # for a --data spec
    mix: Literal["concat", "weighted"] = "concat"
    ratios: Optional[list[float]] = None  # one per source, for mix: weighted
    samples_per_epoch: Optional[int] = Field(None, ge=1)  # weighted mix only
    validate_images: bool = False  # decode every image up front (small data) instead of lazily
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    val_max: int = Field(2000, ge=0)

    @model_validator(mode="after")
    def _ratios_match(self) -> "DataConfig":
        if self.mix == "weighted" and (self.ratios is None or len(self.ratios) != len(self.sources)):
            raise ValueError("mix: weighted needs `ratios` with one value per source")
        return self


def parse_data_spec(spec: str, section: str = "both") -> SourceConfig:
    """'mimic:<dir>' | 'csv:<file>' | 'syncxr:<dir>' | '<dir>' (a syncxr dataset folder)."""
    kind, sep, path = spec.partition(":")
    if sep and kind in PAIR_SOURCES:
        return SourceConfig(kind=kind, path=path, section=section)
    return SourceConfig(kind="syncxr", path=spec, section=section)


def open_source(cfg: SourceConfig, validate_images: bool = False) -> "PairSource":
    defaults = SourceConfig.model_construct(kind=cfg.kind, path=cfg.path)
    # Fields holding a non-default value (a saved, reloaded config sets every field explicitly).
    given = {k for k in cfg.model_fields_set - {"kind", "fraction"} if getattr(cfg, k) != getattr(defaults, k)} | {"path"}
    factory = PAIR_SOURCES.get(cfg.kind)
    accepted = set(inspect.signature(factory).parameters)
    ignored = sorted(k for k in given if k not in accepted and k != "section")
    if ignored:
        raise UserError(
            f"data source kind {cfg.kind!r} takes no option(s) {ignored}; its options: "
            f"{', '.join(sorted(accepted & set(SourceConfig.model_fields)))}"
        )
    values = cfg.model_dump(exclude={"kind"})
    src = PAIR_SOURCES.create(cfg.kind, {k: values[k] for k in given if k in accepted}, context=values)
    if cfg.fraction < 1.0:
        take_fraction(src, cfg.fraction)
    if validate_images:
        src.validate_images()
    return src


FRACTION_SEED = 0  # fixed: the same share of a source is the same pairs in every run and arm


def take_fraction(src: "PairSource", fraction: float) -> None:
    """Keep round(fraction * len) pairs (at least 1): the first of one fixed random order, in
    source order, so smaller fractions are nested in larger ones."""
    import numpy as np

    n = len(src)
    order = np.random.default_rng(FRACTION_SEED).permutation(n)
    src._select(sorted(order[: max(1, round(fraction * n))].tolist()))
    log.info("%s: training on %d of %d pairs (fraction %g)", src.where, len(src), n, fraction)


def open_data(data: "str | SourceConfig | DataConfig", seed: int = 0) -> "PairSource":
    """One PairSource for a --data spec, a source config or the data section (mixes)."""
    if isinstance(data, str):
        data = parse_data_spec(data)
    if isinstance(data, SourceConfig):
        return open_source(data)
    if not data.sources:
        raise UserError("no training data: pass --data <dataset> or fill the config's data.sources")
    sources = [open_source(s, data.validate_images) for s in data.sources]
    if len(sources) == 1 and data.mix == "concat":
        return sources[0]
    from syncxr.data.sources.mix import MixSource

    ratios = data.ratios if data.mix == "weighted" else None
    return MixSource(sources, ratios=ratios, size=data.samples_per_epoch, seed=seed)
