"""Library entry points for the CLI: one task (`run_task`) or a whole suite from YAML (`run_suite`).

    run_task("zeroshot", "runs/quick", "chexpert", "/data/chexpert", "out/zs-chexpert", n_boot=200)
    run_suite("configs/evaluate/sim.yaml", "runs/quick", "out/eval")

Each task writes results.json (resolved config, checkpoint id, per-finding metrics with CIs,
means) and a predictions CSV into its output folder. Image preprocessing always comes from the
checkpoint; asking for another image_size is an error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from syncxr.config import read_yaml, validate
from syncxr.errors import UserError
from syncxr.evaluate.results import atomic_write_text, output_paths, to_jsonable, write_results
from syncxr.evaluate.tasks import TASKS, task as get_task
from syncxr.evaluate.zeroshot import RunOptions

log = logging.getLogger(__name__)

TaskName = str  # a TASKS name (checked when a job or the CLI names one)

RelabelSpec = Union[str, dict[str, Optional[str]]]


class DatasetSpec(BaseModel):
    """How to load the evaluation dataset of one job."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    data_dir: str
    dataset_options: dict[str, Any] = Field(default_factory=dict)  # passed to load_dataset
    relabel: Optional[RelabelSpec] = None  # EvalDataset.relabel map or preset ("chexpert14")
    views: Optional[list[str]] = None  # EvalDataset.view_filter, e.g. [frontal]


def _known_task_name(name: str) -> str:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS.names())}")
    return name


def parse_options(task: str, options: dict[str, Any], source: str) -> RunOptions:
    if task not in TASKS:
        raise UserError(f"{source}: unknown task {task!r}; valid tasks: {', '.join(TASKS.names())}")
    return validate(get_task(task).options, options, source)


def check_preprocess(opts: RunOptions, pretrained: Any) -> None:
    size = int(pretrained.preprocess.image_size)
    if opts.image_size is not None and opts.image_size != size:
        raise UserError(
            f"image_size={opts.image_size} was requested, but checkpoint {pretrained.checkpoint_id} was trained "
            f"with image_size={size}; evaluation uses the checkpoint's own preprocessing. Drop image_size or set it to {size}."
        )


def load_eval_dataset(spec: DatasetSpec) -> Any:
    from syncxr.data.sources.registry import load_dataset

    ds = load_dataset(spec.dataset, spec.data_dir, **spec.dataset_options)
    if spec.views:
        ds = ds.view_filter(spec.views)
    if spec.relabel is not None:
        ds = ds.relabel(spec.relabel)
    return ds


def evaluate_loaded(task: str, pretrained: Any, dataset: Any, out: str | Path, opts: RunOptions,
                    predictions: str | Path | None = None, extra_config: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Run one task on an already loaded checkpoint and dataset; write and return results."""
    check_preprocess(opts, pretrained)
    runner = get_task(task).run
    folder, results_path, _ = output_paths(out)  # --out: a folder, or the results .json itself
    output = runner(pretrained, dataset, opts, folder)
    preprocess = pretrained.preprocess.to_dict() if hasattr(pretrained.preprocess, "to_dict") else {}
    result = {
        "task": task,
        "dataset": dataset.name,
        "checkpoint_id": pretrained.checkpoint_id,
        "config": {**(extra_config or {}), "task": task, "options": opts.model_dump(mode="json"), "preprocess": preprocess},
        **output.result,
    }
    write_results(out, result, output.predictions, predictions)
    log.info("%s on %s: results in %s", task, dataset.name, results_path)
    return to_jsonable(result)


def run_task(task: str, checkpoint: str, dataset: str, data_dir: str, out: str, predictions: str | None = None,
             **options: Any) -> dict[str, Any]:
    """Evaluate `checkpoint` on one task and dataset; options are the task's options plus the
    dataset keys `dataset_options`, `relabel` and `views` (see DatasetSpec)."""
    from syncxr.models.pretrained import load_pretrained

    output_paths(out)  # a bad --out fails before any loading
    ds_keys = {k: options.pop(k) for k in ("dataset_options", "relabel", "views") if k in options}
    spec = validate(DatasetSpec, {"dataset": dataset, "data_dir": str(data_dir), **ds_keys}, f"{task} dataset")
    opts = parse_options(task, options, f"{task} options")  # fail on a bad option before any loading
    pretrained = load_pretrained(checkpoint)
    check_preprocess(opts, pretrained)
    ds = load_eval_dataset(spec)
    return evaluate_loaded(task, pretrained, ds, out, opts, predictions,
                           {"checkpoint": str(checkpoint), **spec.model_dump(mode="json")})


# --- suites ---------------------------------------------------------------------------------


class Job(DatasetSpec):
    name: Optional[str] = None  # output subfolder (default: <task>-<dataset>)
    task: TaskName
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        return _known_task_name(v)

    @property
    def label(self) -> str:
        return self.name or f"{self.task}-{self.dataset}"


class SuiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_root: Optional[str] = None  # relative data_dirs are resolved against it
    splits_dir: Optional[str] = None  # shared split files (default: <out_dir>/splits); share it across checkpoints
    defaults: dict[str, Any] = Field(default_factory=dict)  # options every job starts from
    task_defaults: dict[TaskName, dict[str, Any]] = Field(default_factory=dict)
    jobs: list[Job] = Field(min_length=1)
    stop_on_error: bool = False  # False: a job that fails with a UserError (e.g. missing data) is recorded and skipped

    @field_validator("task_defaults")
    @classmethod
    def _known_tasks(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            _known_task_name(name)
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> "SuiteConfig":
        labels = [j.label for j in self.jobs]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"job names {dup} appear twice; give each job a distinct `name`")
        return self

    def job_options(self, job: Job) -> dict[str, Any]:
        allowed = get_task(job.task).options.model_fields
        # Suite-wide defaults apply only to tasks that have that option (epochs means nothing to zeroshot).
        base = {k: v for k, v in self.defaults.items() if k in allowed}
        return {**base, **self.task_defaults.get(job.task, {}), **job.options}


def load_suite(config_path: str | Path) -> SuiteConfig:
    cfg = validate(SuiteConfig, read_yaml(config_path), str(config_path))
    for i, job in enumerate(cfg.jobs):  # validate every job's options up front
        parse_options(job.task, cfg.job_options(job), f"{config_path}: jobs.{i} ({job.label}).options")
    return cfg


def run_suite(config_path: str | Path, checkpoint: str, out_dir: str | Path) -> dict[str, Any]:
    """Run every job of a suite YAML against one checkpoint; out_dir/<job>/results.json each and
    out_dir/suite.json with the headline numbers (or the error) of every job."""
    from syncxr.models.pretrained import load_pretrained

    cfg = load_suite(config_path)
    out_dir = Path(out_dir)
    pretrained = load_pretrained(checkpoint)
    splits_dir = Path(cfg.splits_dir) if cfg.splits_dir else out_dir / "splits"
    summary: dict[str, Any] = {"config": str(config_path), "checkpoint": str(checkpoint),
                               "checkpoint_id": pretrained.checkpoint_id, "jobs": {}}
    for job in cfg.jobs:
        data_dir = Path(job.data_dir)
        if cfg.data_root and not data_dir.is_absolute():
            data_dir = Path(cfg.data_root) / data_dir
        spec = DatasetSpec(**{**job.model_dump(include=set(DatasetSpec.model_fields)), "data_dir": str(data_dir)})
        options = cfg.job_options(job)
        if job.task in ("finetune", "segment") and "splits" not in options:
            options["splits"] = str(splits_dir / f"{job.dataset}.json")  # one split per dataset, shared by tasks
        opts = parse_options(job.task, options, job.label)
        try:
            ds = load_eval_dataset(spec)
            result = evaluate_loaded(job.task, pretrained, ds, out_dir / job.label, opts, None,
                                     {"checkpoint": str(checkpoint), "suite": str(config_path), **spec.model_dump(mode="json")})
        except UserError as e:
            if cfg.stop_on_error:
                raise
            log.error("job %s failed: %s", job.label, e)
            summary["jobs"][job.label] = {"error": str(e)}
            continue
        summary["jobs"][job.label] = {k: v for k, v in result.items() if k.startswith(("mean_", "accuracy", "macro_f1", "dice@"))}
    atomic_write_text(out_dir / "suite.json", json.dumps(to_jsonable(summary), indent=2) + "\n")
    return summary
