"""`syncxr doctor`: what this machine can run, and whether a given generation config can run.

For every registered backend, executor, objective and image encoder: whether its packages
import. With a config: whether each chosen backend's options are valid (checked without building a model), whether the weights it names
are found (a local folder, or a hub name in the local Hugging Face cache), which devices are
visible, and whether the Ray cluster answers. The first failing check is what to fix first.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from syncxr.errors import UserError
from syncxr.fsio import install_hint

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    area: str
    item: str
    status: str
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, area: str, item: str, status: str, detail: str = "") -> None:
        self.checks.append(Check(area, item, status, detail))

    @property
    def first_failure(self) -> Optional[Check]:
        return next((c for c in self.checks if c.status == FAIL), None)


def missing_packages(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def _registries() -> dict[str, Any]:
    """Every registry of plug-ins, by the kind the report names (none imports a backend)."""
    from syncxr.image.base import GENERATORS
    from syncxr.models.registry import IMAGE_ENCODERS
    from syncxr.objectives.registry import OBJECTIVES
    from syncxr.pipeline.executor import EXECUTORS
    from syncxr.qc.base import FEATURES
    from syncxr.text.base import EXTRACTORS, WRITERS
    from syncxr.transports.base import TRANSPORTS

    return {"extractor": EXTRACTORS, "writer": WRITERS, "generator": GENERATORS, "features": FEATURES,
            "llm transport": TRANSPORTS, "executor": EXECUTORS, "objective": OBJECTIVES,
            "image encoder": IMAGE_ENCODERS}


def check_backends(report: Report) -> None:
    for kind, registry in _registries().items():
        for name in registry.names():
            missing = missing_packages(registry.requires(name))
            status = OK if not missing else WARN
            detail = "built in" if not registry.requires(name) else (
                "packages import" if not missing else f"missing {', '.join(missing)}")
            report.add(kind, name, status, detail)


def check_devices(report: Report) -> list[str]:
    """Visible GPUs (names and memory when torch can say, without failing when it cannot)."""
    from syncxr.pipeline.local import visible_gpus

    gpus = visible_gpus()
    if not gpus:
        report.add("devices", "cuda", WARN, "no GPU visible (CPU only)")
        return gpus
    detail = f"{len(gpus)} visible ({', '.join(gpus)})"
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
                detail = "; ".join(f"cuda:{i} {p.name} {p.total_memory / 2**30:.0f} GiB" for i, p in enumerate(props))
        except Exception as e:  # a broken driver is a finding, not a crash
            report.add("devices", "cuda", FAIL, f"GPUs listed but torch cannot use them: {e}")
            return gpus
    report.add("devices", "cuda", OK, detail)
    return gpus


def check_ray(report: Report, address: Optional[str]) -> None:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        report.add("ray", "cluster", OK, "no address: --executor ray starts a local Ray")
        return
    if missing_packages(("ray",)):
        report.add("ray", address, FAIL, f"ray is not installed: {install_hint('ray')}")
        return
    import ray

    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        resources = ray.cluster_resources()
        report.add("ray", address, OK, f"{resources.get('CPU', 0):.0f} CPU, {resources.get('GPU', 0):.0f} GPU")
    except Exception as e:
        report.add("ray", address, FAIL, f"not reachable: {e}")
    finally:
        if ray.is_initialized():
            ray.shutdown()


def weights_found(model: str) -> tuple[str, str]:
    """(status, detail) for a `model` option: a local folder, or a hub name in the local cache."""
    path = Path(model).expanduser()
    if path.exists():
        return (OK, f"local {path}") if path.is_dir() else (FAIL, f"{path} is a file; give the model folder")
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        return FAIL, f"{model}: no such folder"
    try:
        from huggingface_hub import scan_cache_dir

        cached = {r.repo_id for r in scan_cache_dir().repos}
    except Exception:
        cached = set()
    if model in cached:
        return OK, f"hub {model} (in the local cache)"
    return WARN, f"hub {model} is not in the local cache: it is downloaded on first use (needs network and access)"


def check_config(report: Report, config: Path, gpus: list[str]) -> None:
    from syncxr.config import load_config
    from syncxr.pipeline.build import BACKENDS, chosen_backends, context_of
    from syncxr.pipeline.config import GenerateConfig

    try:
        cfg = load_config(GenerateConfig, config, [])
    except UserError as e:
        report.add("config", str(config), FAIL, str(e))
        return
    report.add("config", str(config), OK, "valid")
    for kind, name, options in chosen_backends(cfg):
        registry = BACKENDS[kind]
        if name not in registry:
            report.add(kind, name, FAIL, f"unknown; valid: {', '.join(registry.names())}")
            continue
        missing = missing_packages(registry.requires(name))
        transport = options.get("transport") if kind == "writer" else None
        if transport:
            from syncxr.transports.base import TRANSPORTS

            if transport in TRANSPORTS:
                missing += missing_packages(TRANSPORTS.requires(transport))
        if missing:
            report.add(kind, name, FAIL, f"needs {', '.join(missing)}: pip install the matching syncxr extra")
            continue
        try:
            registry.check(name, options, context_of(cfg, ontology=None))
        except UserError as e:
            report.add(kind, name, FAIL, str(e))
            continue
        report.add(kind, name, OK, "options valid")
        if "model" in options:
            status, detail = weights_found(str(options["model"]))
            report.add(kind, f"{name} weights", status, detail)
        if str(options.get("device", "cpu")).startswith("cuda") and not gpus:
            report.add(kind, f"{name} device", FAIL, f"device {options['device']} but no GPU is visible")


def diagnose(config: Optional[Path] = None, ray_address: Optional[str] = None) -> Report:
    report = Report()
    check_backends(report)
    gpus = check_devices(report)
    check_ray(report, ray_address)
    if config is not None:
        check_config(report, config, gpus)
    return report
