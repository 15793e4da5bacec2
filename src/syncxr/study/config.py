"""The study config: YAML -> pydantic (extra="forbid"), `--set` overrides, up-front validation.

A study trains one checkpoint per (arm, objective, seed) with everything else fixed and evaluates
every checkpoint on the same benchmarks. Everything that can be wrong in the config (a typo'd key,
a missing train/generate config, a bad task option, an unknown objective) is found by
`load_study_config` before any data is written, and reported as one UserError naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from syncxr.config import apply_overrides, load_config, read_yaml, validate
from syncxr.errors import UserError

Arm = Literal["real", "synthetic", "mixed"]
TaskName = Literal["zeroshot", "grounding", "finetune", "segment"]
TASK_ORDER: tuple[TaskName, ...] = ("zeroshot", "grounding", "finetune", "segment")
# The phantom renderer (synthetic images, sim corpus, sim benchmark) draws 128..1024 px.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 128, 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sizes(_Strict):
    n_real: int = Field(1000, ge=1)  # studies in the simulated MIMIC-shaped corpus (real.source: sim)
    n_synthetic: int = Field(1000, ge=1)  # pairs requested from `syncxr generate` (synthetic.source: generate)
    n_benchmark: int = Field(300, ge=10)  # images in the simulated benchmark
    image_size: int = Field(128, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE)  # px of every image the study draws


class RealData(_Strict):
    source: Literal["sim", "mimic"] = "sim"  # sim: written by the study; mimic: an existing MIMIC-CXR-JPG root
    path: Optional[str] = None  # for source: mimic
    section: Literal["findings", "impression", "both"] = "both"
    split: str = "train"

    @model_validator(mode="after")
    def _path(self) -> "RealData":
        if self.source == "mimic" and not self.path:
            raise ValueError("source: mimic needs `path` (the MIMIC-CXR-JPG root folder)")
        return self


class SyntheticData(_Strict):
    source: Literal["generate", "dataset"] = "generate"  # generate: run `syncxr generate`; dataset: existing folder
    config: str = "configs/generate/quick.yaml"  # generation YAML (source: generate)
    overrides: list[str] = Field(default_factory=list)  # --set style, applied after n and image.size
    workers: Optional[int] = Field(None, ge=1)  # generation processes (default: all cores)
    path: Optional[str] = None  # for source: dataset
    section: Literal["findings", "impression", "both"] = "both"

    @model_validator(mode="after")
    def _path(self) -> "SyntheticData":
        if self.source == "dataset" and not self.path:
            raise ValueError("source: dataset needs `path` (a syncxr dataset folder)")
        return self


class MixSpec(_Strict):
    mode: Literal["concat", "weighted"] = "concat"
    ratios: Optional[list[float]] = None  # [real, synthetic], for mode: weighted
    samples_per_epoch: Optional[int] = Field(None, ge=1)

    @model_validator(mode="after")
    def _ratios(self) -> "MixSpec":
        if self.mode == "weighted" and (self.ratios is None or len(self.ratios) != 2 or min(self.ratios) < 0):
            raise ValueError("mode: weighted needs `ratios: [real, synthetic]` (two non-negative numbers)")
        return self


class TrainSpec(_Strict):
    config: str = "configs/train/quick.yaml"
    overrides: list[str] = Field(default_factory=list)
    # steps: every arm runs exactly `steps` optimizer steps (the fair default: the mixed arm has more
    # data, so equal epochs would give it more updates); epochs: every arm runs the config's epochs.
    budget: Literal["steps", "epochs"] = "steps"
    steps: Optional[int] = Field(180, ge=1)
    # > 1: each run is launched as `torchrun --standalone --nproc_per_node N -m syncxr train` (DDP on
    # the GPUs of this machine); 1: in this process.
    nproc_per_node: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _steps(self) -> "TrainSpec":
        if self.budget == "steps" and self.steps is None:
            raise ValueError("budget: steps needs `steps` (optimizer steps per arm)")
        return self


class ObjectiveSpec(_Strict):
    name: str = "convirt"
    params: Optional[dict[str, Any]] = None  # None: the train config's params if it names this objective, else defaults
    config: Optional[str] = None  # a train YAML for this objective only (default: train.config)
    overrides: list[str] = Field(default_factory=list)


class BenchmarkSpec(_Strict):
    name: Optional[str] = None  # output subfolder and table label (default: the dataset name)
    dataset: str = "sim"  # a loader name: sim | chexpert | chexpert5x200 | cxr14 | padchest | rsna | siim | covidx | csv
    data_dir: Optional[str] = None  # null (dataset sim only): the benchmark the study writes
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    relabel: Optional[Any] = None
    views: Optional[list[str]] = None
    tasks: Optional[list[TaskName]] = None  # subset of eval.tasks (default: all of them)
    task_options: dict[TaskName, dict[str, Any]] = Field(default_factory=dict)  # per-task overrides
    # true: a benchmark you may not have (e.g. a folder of real films); when data_dir is absent the
    # study runs without it and the report says it was left out and why.
    optional: bool = False

    @property
    def label(self) -> str:
        return self.name or self.dataset

    @property
    def built(self) -> bool:
        """True for the simulated benchmark the study writes itself."""
        return self.data_dir is None

    @model_validator(mode="after")
    def _dir(self) -> "BenchmarkSpec":
        if self.data_dir is None and self.dataset != "sim":
            raise ValueError(f"dataset {self.dataset!r} needs `data_dir` (only dataset sim is written by the study)")
        return self


class Ablation(_Strict):
    """One of the paper's questions as a switch: another synthetic dataset, generated with the
    study's synthetic config plus `overrides`, pretrained as its own arm "synthetic~<name>"."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")  # e.g. no_balance, no_verify, no_qc, k1
    overrides: list[str] = Field(min_length=1)  # generate --set overrides, e.g. entities.balance=false


class Scaling(_Strict):
    """Data-size scaling: each arm also trained on these shares of its data ("synthetic@25%")."""

    arms: list[Arm] = Field(default_factory=lambda: ["synthetic"], min_length=1)
    fractions: list[float] = Field(default_factory=lambda: [0.25, 0.5], min_length=1)  # 1.0 is the arm itself

    @model_validator(mode="after")
    def _fractions(self) -> "Scaling":
        bad = [f for f in self.fractions if not 0.0 < f < 1.0]
        if bad:
            raise ValueError(f"fractions must be in (0, 1) (1.0 is the arm itself), got {bad}")
        return self


class AuditSpec(_Strict):
    """The audits the study runs on its synthetic dataset against its real corpus (syncxr audit):
    an options dict runs it (with those options), null skips it."""

    privacy: Optional[dict[str, Any]] = Field(default_factory=dict)  # nearest real report/image per synthetic pair
    fidelity: Optional[dict[str, Any]] = Field(default_factory=dict)  # FD, k-NN precision/recall, real-vs-synthetic AUC


class StatsSpec(_Strict):
    """The paired bootstrap of the report. A p-value cannot go below 2/(n_boot + 1), and Holm
    multiplies it by the number of comparisons in a table: with 30 rows, 1,000 resamples could never
    resolve anything (30 x 0.002 = 0.06), hence 10,000."""

    n_boot: int = Field(10_000, ge=100)
    seed: int = 0


class EvalSpec(_Strict):
    defaults: dict[str, Any] = Field(default_factory=lambda: {"n_boot": 200, "batch_size": 64})  # every task
    # task -> its options; a task that is absent or null is not run.
    tasks: dict[TaskName, Optional[dict[str, Any]]] = Field(default_factory=lambda: {"zeroshot": {}})

    def enabled(self) -> list[TaskName]:
        return [t for t in TASK_ORDER if t in self.tasks and self.tasks[t] is not None]


class StudyConfig(_Strict):
    seed: int = 0  # data seed (corpus, generation); the benchmark uses seed + 1
    sizes: Sizes = Field(default_factory=Sizes)
    real: RealData = Field(default_factory=RealData)
    synthetic: SyntheticData = Field(default_factory=SyntheticData)
    arms: list[Arm] = Field(default_factory=lambda: ["real", "synthetic", "mixed"], min_length=1)
    mix: MixSpec = Field(default_factory=MixSpec)
    ablations: list[Ablation] = Field(default_factory=list)  # synthetic-data switches, each its own arm
    scaling: Optional[Scaling] = None  # data-size scaling curve
    train: TrainSpec = Field(default_factory=TrainSpec)
    objectives: list[ObjectiveSpec] = Field(default_factory=lambda: [ObjectiveSpec()], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # training seeds
    benchmarks: list[BenchmarkSpec] = Field(default_factory=lambda: [BenchmarkSpec()], min_length=1)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    stats: StatsSpec = Field(default_factory=StatsSpec)

    @model_validator(mode="after")
    def _unique(self) -> "StudyConfig":
        for what, items in (("arms", list(self.arms)), ("objectives", [o.name for o in self.objectives]),
                            ("seeds", list(self.seeds)), ("benchmarks", [b.label for b in self.benchmarks])):
            dup = sorted({str(x) for x in items if items.count(x) > 1})
            if dup:
                raise ValueError(f"{what}: {dup} listed twice; give each a distinct entry (benchmarks: a distinct `name`)")
        if not self.eval.enabled():
            raise ValueError("eval.tasks enables no task; add e.g. `zeroshot: {}`")
        names = [a.name for a in self.ablations]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"ablations: {dup} listed twice; give each a distinct name")
        if self.ablations and self.synthetic.source != "generate":
            raise ValueError("ablations need synthetic.source: generate (each ablation generates its own dataset)")
        if self.scaling:
            missing = sorted(set(self.scaling.arms) - set(self.arms))
            if missing:
                raise ValueError(f"scaling.arms: {missing} not in arms {list(self.arms)}")
        return self

    def present_benchmarks(self) -> list[BenchmarkSpec]:
        """The benchmarks this machine has (an optional one whose data_dir is absent is left out)."""
        return [b for b in self.benchmarks if not (b.optional and b.data_dir and not Path(b.data_dir).is_dir())]

    def absent_benchmarks(self) -> list[str]:
        kept = {b.label for b in self.present_benchmarks()}
        return [f"{b.label}: data_dir {b.data_dir} not found (optional benchmark)" for b in self.benchmarks if b.label not in kept]

    def needs(self, source: Literal["real", "synthetic"]) -> bool:
        return source in self.arms or "mixed" in self.arms or (source == "synthetic" and bool(self.ablations))


def existing_file(path: str, key: str, source: str) -> Path:
    """Relative paths are resolved against the current folder, like every syncxr command."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{source}: {key}: file {p} not found (relative paths are resolved against the "
                        f"current folder {Path.cwd()}); point it at an existing YAML, e.g. configs/train/quick.yaml")
    return p


def task_options(cfg: StudyConfig, bench: BenchmarkSpec, task: str) -> dict[str, Any]:
    """eval.defaults (only the keys this task has) < eval.tasks[task] < benchmark.task_options[task]."""
    from syncxr.evaluate.tasks import task as get_task

    allowed = get_task(task).options.model_fields
    base = {k: v for k, v in cfg.eval.defaults.items() if k in allowed}
    return {**base, **(cfg.eval.tasks.get(task) or {}), **bench.task_options.get(task, {})}  # type: ignore[call-overload]


def bench_tasks(cfg: StudyConfig, bench: BenchmarkSpec) -> list[str]:
    enabled = cfg.eval.enabled()
    return [t for t in enabled if bench.tasks is None or t in bench.tasks]


def check_references(cfg: StudyConfig, source: str) -> None:
    """Validate the referenced generate/train configs and every task's options now, not mid-study."""
    from syncxr.evaluate.suite import parse_options
    from syncxr.evaluate.tasks import TASKS, task as get_task

    known = {k for name in TASKS.names() for k in get_task(name).options.model_fields}
    unknown = sorted(set(cfg.eval.defaults) - known)
    if unknown:  # task_options keeps only the keys a task has, so a typo here would be dropped silently
        raise UserError(f"{source}: eval.defaults.{unknown[0]}: unknown evaluation option; valid: {sorted(known)}")
    if cfg.needs("synthetic") and cfg.synthetic.source == "generate":
        from syncxr.pipeline.config import GenerateConfig

        path = existing_file(cfg.synthetic.config, "synthetic.config", source)
        load_config(GenerateConfig, path, generate_overrides(cfg))
        for ab in cfg.ablations:  # a typo'd switch fails now, not after the main arms have trained
            try:
                load_config(GenerateConfig, path, [*generate_overrides(cfg), *ab.overrides])
            except UserError as e:
                raise UserError(f"{source}: ablations[{ab.name}].overrides: {e}") from None
    for kind, options in (("privacy", cfg.audit.privacy), ("fidelity", cfg.audit.fidelity)):
        if options is not None:
            import importlib

            try:
                importlib.import_module(f"syncxr.audit.{kind}").check_options(dict(options))
            except UserError as e:
                raise UserError(f"{source}: audit.{kind}: {e}") from None
    for obj in cfg.objectives:
        key = f"objectives[{obj.name}].config" if obj.config else "train.config"
        existing_file(obj.config or cfg.train.config, key, source)
    for bench in cfg.present_benchmarks():
        for task in bench_tasks(cfg, bench):
            parse_options(task, task_options(cfg, bench, task), f"{source}: eval.tasks.{task} (benchmark {bench.label})")


def generate_overrides(cfg: StudyConfig) -> list[str]:
    return [f"n={cfg.sizes.n_synthetic}", f"image.size={cfg.sizes.image_size}", f"seed={cfg.seed}", *cfg.synthetic.overrides]


def load_study_config(path: str | Path | None, overrides: list[str] | None = None) -> StudyConfig:
    """Read the study YAML (defaults when path is None), apply `--set` overrides, validate everything."""
    raw = read_yaml(path) if path else {}
    source = str(path) if path else "study config"
    cfg = validate(StudyConfig, apply_overrides(raw, overrides or []), source)
    check_references(cfg, source)
    return cfg
