"""Build backends and stages from a GenerateConfig, by short names through the registries.

Each backend registers itself when its module is imported; BACKEND_MODULES says which module to
import for a name, so heavy optional dependencies load only when that backend is chosen.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from syncxr.errors import UserError
from syncxr.pipeline.config import GenerateConfig
from syncxr.registry import Registry
from syncxr.vocab import Ontology, load_ontology

log = logging.getLogger(__name__)

BACKEND_MODULES: dict[str, dict[str, str]] = {
    "extractor": {"lexicon": "syncxr.text.extract", "rate-ner": "syncxr.text.rate_ner"},
    "writer": {"grammar": "syncxr.text.write", "llm": "syncxr.text.llm"},
    "generator": {"phantom": "syncxr.image.stage", "diffusion": "syncxr.image.diffusion"},
    "features": {"builtin": "syncxr.qc.features", "rad-dino": "syncxr.qc.rad_dino"},
}


def _registry(kind: str) -> Registry:
    if kind == "extractor":
        from syncxr.text.base import EXTRACTORS as reg
    elif kind == "writer":
        from syncxr.text.base import WRITERS as reg
    elif kind == "generator":
        from syncxr.image.base import GENERATORS as reg
    else:
        from syncxr.qc.base import FEATURES as reg
    return reg


def build_backend(kind: str, name: str, **kwargs: Any) -> Any:
    """Import the module that registers `name`, then build it; a miss lists the valid names."""
    modules = BACKEND_MODULES[kind]
    if name not in modules:
        raise UserError(f"unknown {kind} backend {name!r}; valid names: {', '.join(sorted(modules))}")
    importlib.import_module(modules[name])
    try:
        return _registry(kind).build(name, **kwargs)
    except TypeError as e:
        raise UserError(f"{kind} backend {name!r}: bad options: {e}") from None


def validate_backends(cfg: GenerateConfig) -> None:
    """Check every backend name (and import its module) before any work or output."""
    chosen = [("extractor", cfg.extract.backend), ("writer", cfg.write.backend), ("generator", cfg.image.backend)]
    if cfg.qc.enabled:
        chosen.append(("features", cfg.qc.features))
    for kind, name in chosen:
        modules = BACKEND_MODULES[kind]
        if name not in modules:
            raise UserError(f"unknown {kind} backend {name!r}; valid names: {', '.join(sorted(modules))}")
        importlib.import_module(modules[name])


def ontology_of(cfg: GenerateConfig) -> Ontology:
    try:
        return load_ontology(cfg.ontology)
    except FileNotFoundError as e:
        raise UserError(f"{e}; set `ontology:` to an existing YAML file or leave it empty") from None
    except ValueError as e:
        raise UserError(f"ontology {cfg.ontology or '(bundled)'}: {e}") from None


def build_extractor(cfg: GenerateConfig) -> Any:
    kwargs = dict(cfg.extract.options)
    if cfg.extract.backend == "lexicon":
        kwargs.setdefault("ontology", ontology_of(cfg))
    return build_backend("extractor", cfg.extract.backend, **kwargs)


def build_stages(cfg: GenerateConfig, bank_path: Path | None) -> list[Any]:
    """The per-sample stages, in order: write+verify, label, image (+QC)."""
    from syncxr.text.stages import LabelStage, WriteVerifyStage
    from syncxr.text.verify import Verifier
    from syncxr.image.stage import ImageStage

    ontology = ontology_of(cfg)
    extractor = build_extractor(cfg)
    wopts = dict(cfg.write.options)
    if cfg.write.backend == "grammar":
        wopts.setdefault("ontology", ontology)
        wopts.setdefault("filler", cfg.write.filler)
    writer = build_backend("writer", cfg.write.backend, **wopts)
    verifier = Verifier(extractor, mode=cfg.verify.mode, check_attributes=cfg.verify.check_attributes)
    gopts = dict(cfg.image.options)
    if cfg.image.backend == "phantom":
        gopts.setdefault("size", cfg.image.size)
        gopts.setdefault("extractor", extractor)
        gopts.setdefault("ontology", ontology)
    elif cfg.image.backend == "diffusion":  # the diffusion pipeline takes height and width
        gopts.setdefault("height", cfg.image.size)
        gopts.setdefault("width", cfg.image.size)
    generator = build_backend("generator", cfg.image.backend, **gopts)
    image_filter = build_filter(cfg, bank_path) if cfg.qc.enabled else None
    return [
        WriteVerifyStage(writer, verifier, max_attempts=cfg.write.max_attempts),
        LabelStage(ontology),
        ImageStage(
            generator,
            image_filter=image_filter,
            max_attempts=cfg.image.max_attempts,
            compress_level=cfg.image.png_compress_level,
        ),
    ]


def build_features(cfg: GenerateConfig) -> Any:
    return build_backend("features", cfg.qc.features, **cfg.qc.feature_options)


def build_filter(cfg: GenerateConfig, bank_path: Path | None) -> Any:
    from syncxr.qc.bank import ProblemBank
    from syncxr.qc.filter import BankFilter

    features = build_features(cfg)
    bank = ProblemBank.load(bank_path) if bank_path else None
    kwargs: dict[str, Any] = {"heuristics": cfg.qc.heuristics}
    if cfg.qc.threshold is not None:
        kwargs["threshold"] = cfg.qc.threshold
    return BankFilter(bank, features, **kwargs)


def prepare_bank(cfg: GenerateConfig, out: Path) -> Path | None:
    """Resolve the problem bank: a user file, or the built-in bank made from phantom defects
    (built once into the dataset folder, so workers and reruns share the same bank)."""
    if not cfg.qc.enabled or cfg.qc.bank is None:
        return None
    if cfg.qc.bank != "builtin":
        path = Path(cfg.qc.bank)
        if not path.is_file():
            raise UserError(f"qc.bank: file not found: {path}; build one with `syncxr qc build-bank`")
        return path
    from syncxr.qc.bank import build_bank

    path = out / "qc" / "bank.npz"
    if not path.is_file():
        log.info("building the built-in QC bank (%d images per defect)", cfg.qc.bank_per_defect)
        bank = build_bank(
            n_per_defect=cfg.qc.bank_per_defect,
            size=cfg.image.size,
            seed=cfg.seed,
            feature_backend=build_features(cfg),
        )
        bank.save(path)
    return path
