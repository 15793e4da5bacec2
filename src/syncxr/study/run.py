"""`run_study`: the real-vs-synthetic-vs-mixed pretraining study as a list of resumable steps.

    run_study("configs/study/quick.yaml", "runs/study", ["sizes.n_real=500"])

Layout of `out`:
    data/real, data/synthetic, data/bench-<name>   the pretraining corpora and the simulated benchmark
    train/<arm>-<objective>-s<seed>                one checkpoint folder per run
    eval/<run>/<benchmark>/<task>                  results.json + predictions.csv per task
    eval/splits/<benchmark>-<hash>.json            one fine-tune/segmentation split shared by all runs
    study.json                                     manifest: steps, configs, hashes, timings, results
    study.yaml, study.md, study.html               resolved config and the report

Every step has a config (including the hashes of the steps it reads); it is skipped when the
manifest records it done with the same config hash and its output is present. A step whose
config changed is wiped and redone, which also invalidates everything downstream of it.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from syncxr.config import config_hash, dump_yaml
from syncxr.errors import UserError
from syncxr.evaluate.results import atomic_write_text, to_jsonable
from syncxr.study.config import (Ablation, BenchmarkSpec, StudyConfig, bench_tasks, generate_overrides,
                                 load_study_config, task_options)
from syncxr.study.step import Step
from syncxr.study.train_steps import train_config, train_step

log = logging.getLogger(__name__)

MANIFEST = "study.json"
MANIFEST_VERSION = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- data steps ------------------------------------------------------------------------------


def _real_step(cfg: StudyConfig, out: Path) -> Step:
    if cfg.real.source == "mimic":
        conf = {"source": "mimic", "path": str(Path(cfg.real.path or "").resolve())}
        return Step("data/real", "real", conf, None, "", f"# real: the existing MIMIC-CXR-JPG root {cfg.real.path}")
    n, size, seed = cfg.sizes.n_real, cfg.sizes.image_size, cfg.seed
    conf = {"source": "sim", "n": n, "size": size, "seed": seed}

    def act(folder: Path, resume: bool) -> dict[str, Any]:
        from syncxr.sim.corpus import write_mimic

        write_mimic(folder, n, seed=seed, size=size)  # deterministic: a resumed run rewrites the same files
        return {"studies": n}

    return Step("data/real", "real", conf, act, "mimic-cxr-2.0.0-split.csv",
                f"syncxr sim mimic --out {out / 'data/real'} --n {n} --size {size} --seed {seed}")


def _synthetic_step(cfg: StudyConfig, out: Path, ablation: Optional[Ablation] = None) -> Step:
    """The synthetic dataset, or (ablation) another one generated with the ablation's switches."""
    syn = cfg.synthetic
    name = "data/synthetic" if ablation is None else f"data/synthetic~{ablation.name}"
    if syn.source == "dataset":
        conf = {"source": "dataset", "path": str(Path(syn.path or "").resolve())}
        return Step(name, "synthetic", conf, None, "", f"# synthetic: the existing syncxr dataset {syn.path}")
    from syncxr.config import load_config
    from syncxr.pipeline.config import GenerateConfig

    overrides = [*generate_overrides(cfg), *(ablation.overrides if ablation else [])]
    gen = load_config(GenerateConfig, syn.config, overrides)
    conf = {"source": "generate", "config": gen.model_dump(mode="json")}

    def act(folder: Path, resume: bool) -> dict[str, Any]:
        from syncxr.pipeline.runner import run_generate
        from syncxr.report.card import write_card

        manifest = run_generate(gen, folder, syn.workers)  # resumes finished shards itself
        write_card(folder)
        return {"counts": manifest.get("counts", {}), "config_hash": config_hash(gen)}

    sets = " ".join(f"--set {shlex.quote(o)}" for o in overrides if not o.startswith("n="))
    return Step(name, "synthetic", conf, act, "card.html",
                f"syncxr generate --config {syn.config} --out {out / name} --n {cfg.sizes.n_synthetic} {sets}")


def _benchmark_step(cfg: StudyConfig, bench: BenchmarkSpec, out: Path) -> Step:
    name = f"data/bench-{bench.label}"
    if not bench.built:
        conf = {"dataset": bench.dataset, "path": str(Path(bench.data_dir or "").resolve())}
        return Step(name, "benchmark", conf, None, "", f"# benchmark: the existing {bench.dataset} data in {bench.data_dir}")
    n, size, seed = cfg.sizes.n_benchmark, cfg.sizes.image_size, cfg.seed + 1  # images unlike the corpora's
    conf = {"dataset": "sim", "n": n, "size": size, "seed": seed, "fmt": "csv"}

    def act(folder: Path, resume: bool) -> dict[str, Any]:
        from syncxr.sim.benchmark import write_sim_benchmark

        write_sim_benchmark(folder, n=n, size=size, seed=seed, fmt="csv", overwrite=True)
        return {"images": n}

    return Step(name, "benchmark", conf, act, "sim.json",
                f"syncxr sim benchmark --out {out / name} --n {n} --size {size} --seed {seed} --format csv")


def data_dir(step: Step, out: Path) -> str:
    return step.config["path"] if step.action is None else str(out / step.name)


def _audit_steps(cfg: StudyConfig, real: Step, syn: Step, out: Path) -> list[Step]:
    """The privacy and fidelity audits of the synthetic dataset against the real corpus."""
    if not (cfg.needs("real") and cfg.needs("synthetic")):
        return []
    steps = []
    for kind, options in (("privacy", cfg.audit.privacy), ("fidelity", cfg.audit.fidelity)):
        if options is None:
            continue
        conf = {"audit": kind, "options": options, "upstream": {real.name: real.hash, syn.name: syn.hash}}

        def act(folder: Path, resume: bool, kind: str = kind, options: dict[str, Any] = dict(options)) -> dict[str, Any]:
            from syncxr.audit.fidelity import run_fidelity_audit
            from syncxr.audit.privacy import run_privacy_audit

            fn = run_privacy_audit if kind == "privacy" else run_fidelity_audit
            return fn(data_dir(syn, out), data_dir(real, out), "mimic", folder, **options)

        sets = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in options.items())
        steps.append(Step(f"audit/{kind}", "audit", conf, act, f"{kind}.json",
                          f"syncxr audit {kind} --synthetic {data_dir(syn, out)} --real {data_dir(real, out)} "
                          f"--real-kind mimic --out {out / 'audit' / kind} {sets}".strip()))
    return steps


# --- training --------------------------------------------------------------------------------


def _sources(cfg: StudyConfig, arm: str, real: Step, syn: Step, out: Path, fraction: float = 1.0) -> list[dict[str, Any]]:
    r = {"kind": "mimic", "path": data_dir(real, out), "section": cfg.real.section, "split": cfg.real.split}
    s = {"kind": "syncxr", "path": data_dir(syn, out), "section": cfg.synthetic.section}
    sources = {"real": [r], "synthetic": [s], "mixed": [r, s]}[arm]
    return [{**src, "fraction": fraction} for src in sources] if fraction < 1.0 else sources


@dataclass
class Variant:
    """One pretraining arm of the study: a main arm, an ablation's dataset or a data-size share."""

    arm: str  # real | synthetic | mixed: which data
    synthetic: Step  # the synthetic dataset it reads (an ablation's own)
    ablation: Optional[str] = None
    fraction: float = 1.0

    @property
    def group(self) -> str:
        """Display label and aggregation key: "synthetic", "synthetic~no_qc", "real@25%"."""
        if self.ablation:
            return f"{self.arm}~{self.ablation}"
        return self.arm if self.fraction >= 1.0 else f"{self.arm}@{self.fraction * 100:g}%"

    @property
    def slug(self) -> str:  # folder-safe
        return self.group.replace("%", "")


def variants(cfg: StudyConfig, syn: Step, ablations: dict[str, Step]) -> list[Variant]:
    out = [Variant(arm, syn) for arm in cfg.arms]
    out += [Variant("synthetic", ablations[a.name], ablation=a.name) for a in cfg.ablations]
    if cfg.scaling:
        out += [Variant(arm, syn, fraction=f) for arm in cfg.scaling.arms for f in sorted(cfg.scaling.fractions)]
    return out


# --- evaluation ------------------------------------------------------------------------------


class _Loaded:
    """Keeps the last checkpoint and every benchmark in memory: steps run run-by-run."""

    def __init__(self) -> None:
        self.ckpt: tuple[str, Any] | None = None
        self.datasets: dict[str, Any] = {}

    def pretrained(self, path: Path) -> Any:
        from syncxr.models.pretrained import load_pretrained

        if self.ckpt is None or self.ckpt[0] != str(path):
            self.ckpt = (str(path), load_pretrained(str(path)))
        return self.ckpt[1]

    def dataset(self, spec: Any) -> Any:
        from syncxr.evaluate.suite import load_eval_dataset

        key = spec.model_dump_json()
        if key not in self.datasets:
            self.datasets[key] = load_eval_dataset(spec)
        return self.datasets[key]


def _eval_step(run: str, bench: BenchmarkSpec, task: str, options: dict[str, Any], train: Step, data: Step,
               out: Path, cache: _Loaded) -> Step:
    from syncxr.evaluate.suite import DatasetSpec, evaluate_loaded, parse_options

    spec = DatasetSpec(dataset=bench.dataset, data_dir=data_dir(data, out), dataset_options=bench.dataset_options,
                       relabel=bench.relabel, views=bench.views)
    if task in ("finetune", "segment") and "splits" not in options:
        # One split per benchmark (content), shared by every run, so arms are scored on the same images.
        options = {**options, "splits": str(out / "eval" / "splits" / f"{bench.label}-{data.hash}.json")}
    name = f"eval/{run}/{bench.label}/{task}"
    conf = {"task": task, "options": options, "dataset": spec.model_dump(mode="json"),
            "upstream": {train.name: train.hash, data.name: data.hash}}

    def act(folder: Path, resume: bool) -> dict[str, Any]:
        from syncxr.report.study_summary import headline

        opts = parse_options(task, options, name)
        result = evaluate_loaded(task, cache.pretrained(out / train.name), cache.dataset(spec), folder, opts,
                                 None, {"checkpoint": str(out / train.name), **spec.model_dump(mode="json")})
        return headline(task, result, folder, n_boot=opts.n_boot, seed=opts.seed)

    sets = " ".join("--set " + shlex.quote(f"{k}={v if isinstance(v, str) else json.dumps(v)}") for k, v in options.items())
    return Step(name, "eval", conf, act, "results.json",
                f"syncxr evaluate {task} --checkpoint {out / train.name} --dataset {bench.dataset} "
                f"--data-dir {spec.data_dir} --out {out / name} {sets}".strip())


# --- planning and execution ------------------------------------------------------------------


def plan(cfg: StudyConfig, out: Path, source: str) -> tuple[list[Step], list[dict[str, Any]]]:
    """Every step in execution order, and one record per run (arm, objective, seed -> step names).
    Builds every train config first, so a bad objective or override fails before any work."""
    real, syn = _real_step(cfg, out), _synthetic_step(cfg, out)
    ablations = {a.name: _synthetic_step(cfg, out, a) for a in cfg.ablations}
    benches = {b.label: _benchmark_step(cfg, b, out) for b in cfg.present_benchmarks()}
    steps = [s for s, used in ((real, cfg.needs("real")), (syn, cfg.needs("synthetic"))) if used]
    steps += list(ablations.values()) + list(benches.values()) + _audit_steps(cfg, real, syn, out)
    cache, runs, evals = _Loaded(), [], []
    for obj in cfg.objectives:
        for seed in cfg.seeds:
            for v in variants(cfg, syn, ablations):
                run = f"{v.slug}-{obj.name}-s{seed}"
                upstream = [s for s in (real, v.synthetic) if v.arm in (s.kind, "mixed")]
                tcfg = train_config(cfg, obj, seed, _sources(cfg, v.arm, real, v.synthetic, out, v.fraction), source)
                train = train_step(f"train/{run}", tcfg, upstream, out, cfg.train.nproc_per_node)
                record = {"run": run, "arm": v.arm, "variant": v.ablation, "fraction": v.fraction, "group": v.group,
                          "objective": obj.name, "seed": seed, "train": train.name, "evals": {}}
                steps.append(train)
                for bench in cfg.present_benchmarks():
                    for task in bench_tasks(cfg, bench):
                        ev = _eval_step(run, bench, task, task_options(cfg, bench, task), train, benches[bench.label], out, cache)
                        record["evals"].setdefault(bench.label, {})[task] = ev.name
                        evals.append(ev)
                runs.append(record)
    # Evaluations run after all training, grouped by run, so one checkpoint is loaded at a time.
    return steps + evals, runs


def _load_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e}); delete it to rerun every step of the study") from None
    return data if isinstance(data, dict) and data.get("version") == MANIFEST_VERSION else {}


def _is_done(step: Step, entry: Optional[dict[str, Any]], out: Path) -> bool:
    if step.action is None:
        return True
    return bool(entry and entry.get("status") == "done" and entry.get("hash") == step.hash
                and (out / step.name / step.marker).is_file())


def _prepare(step: Step, entry: Optional[dict[str, Any]], out: Path) -> bool:
    """Wipe a folder left by another config; returns True when a same-config folder is resumed."""
    folder = out / step.name
    if folder.exists() and not (entry and entry.get("hash") == step.hash):
        log.info("%s: config changed (or unknown) since the last run; redoing it", step.name)
        shutil.rmtree(folder)  # a study-owned subfolder; stale outputs must not mix with new ones
    return folder.exists()


def _execute(step: Step, resume: bool, out: Path) -> dict[str, Any]:
    folder = out / step.name
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = step.action(folder, resume) if step.action else {}
    return {"result": to_jsonable(result), "seconds": round(time.perf_counter() - t0, 2)}


def run_study(config_path: str, out: str, overrides: Optional[list[str]] = None) -> dict[str, Any]:
    """Run (or resume) the study described by `config_path` (+ `--set` overrides) into `out`.

    Returns the study manifest (also written to out/study.json): the resolved config, one entry
    per step (kind, config, hash, status, seconds, last_run "ran" | "skipped", result), the runs
    and the aggregated summary the report shows. Writes out/study.md and out/study.html."""
    from syncxr.report.study import write_study_report
    from syncxr.report.study_summary import aggregate

    overrides = list(overrides or [])
    cfg = load_study_config(config_path, overrides)
    out_dir = Path(out)
    steps, runs = plan(cfg, out_dir, str(config_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MANIFEST
    old = _load_manifest(path).get("steps", {})
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION, "config": cfg.model_dump(mode="json"), "config_hash": config_hash(cfg),
        "command": " ".join(["syncxr study --config", shlex.quote(str(config_path)), "--out", shlex.quote(str(out)),
                            *[f"--set {shlex.quote(o)}" for o in overrides]]),
        "started_at": _now(), "runs": runs, "absent_benchmarks": cfg.absent_benchmarks(),
        # Earlier entries are carried over until each step is reached, so a crash mid-study loses no record.
        "steps": {s.name: old.get(s.name) or {"kind": s.kind, "status": "pending"} for s in steps},
    }
    atomic_write_text(out_dir / "study.yaml", dump_yaml(cfg))
    t0 = time.perf_counter()
    for i, step in enumerate(steps, 1):
        entry = old.get(step.name)
        record = {"kind": step.kind, "hash": step.hash, "config": step.config, "command": step.command,
                  "external": step.action is None}
        if _is_done(step, entry, out_dir):
            prev = entry or {}
            record.update(status="done", last_run="skipped", seconds=prev.get("seconds", 0.0),
                          result=prev.get("result", {}), finished_at=prev.get("finished_at"))
            log.info("[%d/%d] %s: done before, skipped", i, len(steps), step.name)
        else:
            log.info("[%d/%d] %s: running", i, len(steps), step.name)
            resume = _prepare(step, entry, out_dir)
            manifest["steps"][step.name] = {**record, "status": "running", "started_at": _now()}
            atomic_write_text(path, json.dumps(to_jsonable(manifest), indent=1) + "\n")  # a crash after this resumes
            record.update(status="done", last_run="ran", finished_at=_now(), **_execute(step, resume, out_dir))
        manifest["steps"][step.name] = record
        atomic_write_text(path, json.dumps(to_jsonable(manifest), indent=1) + "\n")
    manifest["seconds_this_run"] = round(time.perf_counter() - t0, 2)
    manifest["finished_at"] = _now()
    manifest["summary"] = aggregate(manifest, out_dir)
    atomic_write_text(path, json.dumps(to_jsonable(manifest), indent=1) + "\n")
    write_study_report(out_dir, manifest)
    return manifest
