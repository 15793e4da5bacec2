"""The `syncxr generate` configuration (see configs/generate/*.yaml for documented presets)."""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IntOrRange = Union[int, tuple[int, int]]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_range(v: IntOrRange, name: str, lo: int) -> IntOrRange:
    a, b = (v, v) if isinstance(v, int) else v
    if a < lo or b < a:
        raise ValueError(f"{name} must be an int >= {lo} or a range [lo, hi] with {lo} <= lo <= hi, got {v}")
    return v


class EntitiesConfig(_Section):
    # Where the entity pool and its "before balancing" counts come from: the ontology (every key,
    # no counts), a CSV of real reports, or the simulated clinical world's report corpus.
    source: Literal["ontology", "corpus", "sim"] = "ontology"
    corpus: Optional[str] = None  # CSV of real reports whose entity counts define the pool
    sim_reports: int = Field(default=2000, ge=100)  # size of the simulated reference corpus
    corpus_text_columns: list[str] = Field(default_factory=lambda: ["findings", "impression"])
    k: IntOrRange = (2, 5)  # non-anatomy entities per report
    m: IntOrRange = (1, 2)  # ANATOMY entities per report
    tau_max: Optional[int] = Field(default=None, ge=1)  # per-entity cap; None = sized from n
    uncertain_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # share of present findings written hedged
    # false: the "without balanced sampling" ablation (draws at the reference corpus's frequencies)
    balance: bool = True

    @field_validator("k")
    @classmethod
    def _k(cls, v: IntOrRange) -> IntOrRange:
        return _check_range(v, "k", 1)

    @field_validator("m")
    @classmethod
    def _m(cls, v: IntOrRange) -> IntOrRange:
        return _check_range(v, "m", 0)

    @model_validator(mode="after")
    def _corpus_given(self) -> "EntitiesConfig":
        if self.source == "corpus" and not self.corpus:
            raise ValueError("source 'corpus' needs entities.corpus: a CSV of reference reports")
        return self


class BackendConfig(_Section):
    backend: str
    options: dict[str, Any] = Field(default_factory=dict)


class WriteConfig(BackendConfig):
    backend: str = "grammar"
    filler: bool = True  # normal statements for unmentioned anatomy (forced off in verify mode "exact")
    max_attempts: int = Field(default=3, ge=1, le=20)


class VerifyConfig(_Section):
    # false: the "without report verification" ablation. Every report is still read by the
    # extractor (the labels come from it) and a mismatch is recorded in the sample's history,
    # but the first report written is kept, mismatch or not.
    enabled: bool = True
    mode: Literal["impression", "exact"] = "impression"
    check_attributes: bool = True
    # What may appear beyond the sampled entities (syncxr/text/verify.py): summaries ("No acute
    # cardiopulmonary process"), negations ("No pneumothorax"), anatomy ("right lower lobe").
    allow_extra: list[Literal["summaries", "negations", "anatomy"]] = Field(default_factory=lambda: ["summaries"])
    unknown: Literal["reject", "ignore"] = "reject"  # phrases the extractor maps to no concept
    # Which sampled entities the IMPRESSION must state: all (the paper's) | positives (findings and
    # "No Finding" statements; the rest may be in FINDINGS only, as in real reports)
    impression: Literal["all", "positives"] = "all"
    boilerplate: Optional[list[str]] = None  # phrases never counted as unknown; None = the built-in list


class ImageConfig(BackendConfig):
    backend: str = "phantom"
    size: int = Field(default=256, ge=128, le=1024)  # the phantom renders 128..1024
    max_attempts: int = Field(default=3, ge=1, le=20)
    png_compress_level: int = Field(default=1, ge=0, le=9)
    # Acquisition faults (syncxr/qc/faults.py): this share of drawn films gets one of `defects`
    # (rotated, over/under-exposed, cropped, ...; None = all) so image QC has something to catch.
    defect_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    defects: Optional[list[str]] = None


class QCConfig(_Section):
    enabled: bool = True
    features: str = "builtin"
    feature_options: dict[str, Any] = Field(default_factory=dict)
    bank: Optional[str] = "builtin"  # path to a bank .npz, "builtin" (phantom defects), or None
    bank_per_defect: int = Field(default=24, ge=1)
    threshold: Optional[float] = Field(default=None, gt=0.0, le=1.0)  # None = the filter's default
    heuristics: bool = True


class EarlyStopConfig(_Section):
    """Stop a run that cannot succeed: after `after_shards` shards, an accept rate below
    `min_accept_rate` ends the run with the reject reasons (0 disables)."""

    after_shards: int = Field(default=2, ge=1)
    min_accept_rate: float = Field(default=0.05, ge=0.0, le=1.0)


class StageResources(_Section):
    """Ray resources of one stage (ignored by the local executor)."""

    num_gpus: float = Field(default=0.0, ge=0.0)
    num_cpus: float = Field(default=0.5, gt=0.0)  # fractional: whole-CPU actors deadlock small clusters
    concurrency: int = Field(default=1, ge=1)  # actors in the stage's pool
    # No per-stage batch size: which samples share a model call may change the last bit of a
    # batched GPU model's output, and the executor must never change the bytes.


class ExecutorConfig(_Section):
    """How the stages are run. It never changes the bytes of a dataset, so it is not part of the
    dataset's identity: a run may be resumed with another executor or other resources."""

    stages: dict[str, StageResources] = Field(default_factory=dict)  # by stage name: write, label, image

    def resources(self, stage: str) -> StageResources:
        return self.stages.get(stage, StageResources())


# Config sections that do not change what is generated (left out of the dataset's identity).
NOT_IDENTITY = {"executor"}


class GenerateConfig(_Section):
    seed: int = 0
    n: int = Field(default=2000, ge=1)  # accepted pairs wanted
    # Plan n * (1 + plan_margin) samples so that rejects still leave n accepted pairs.
    plan_margin: float = Field(default=0.1, ge=0.0, le=3.0)
    shard_size: int = Field(default=500, ge=1)
    batch_size: int = Field(default=64, ge=1)
    ontology: Optional[str] = None  # path to an ontology YAML; None = bundled
    entities: EntitiesConfig = Field(default_factory=EntitiesConfig)
    extract: BackendConfig = Field(default_factory=lambda: BackendConfig(backend="lexicon"))
    write: WriteConfig = Field(default_factory=WriteConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    qc: QCConfig = Field(default_factory=QCConfig)
    early_stop: EarlyStopConfig = Field(default_factory=EarlyStopConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @property
    def n_planned(self) -> int:
        """Samples in the plan: n plus the margin for rejects."""
        return self.n + int(math.ceil(round(self.n * self.plan_margin, 6)))  # round: 700 * 0.1 is 70.00000000000001

    def identity(self) -> dict[str, Any]:
        """What defines the dataset's content (the config minus how it is run)."""
        return self.model_dump(mode="json", exclude=NOT_IDENTITY)

    @model_validator(mode="after")
    def _exact_means_no_filler(self) -> "GenerateConfig":
        if self.verify.mode == "exact" and self.write.filler:
            raise ValueError(
                "verify.mode 'exact' compares the whole report with the sampled entities, so "
                "write.filler (extra normal statements) must be false; set write.filler=false "
                "or use verify.mode=impression (the paper's)"
            )
        return self
