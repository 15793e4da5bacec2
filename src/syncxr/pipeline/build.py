"""Build backends and stages from a GenerateConfig, by short names through the registries.

Each kind of backend has one registry (`syncxr.text.base.EXTRACTORS` / `WRITERS`,
`syncxr.image.base.GENERATORS`, `syncxr.qc.base.FEATURES`); a name's module is imported only
when that backend is chosen. Shared objects the pipeline owns (the ontology, the image size, the
extractor) reach a backend as registry *context*: only if its factory names that parameter.

`validate_backends` checks every name and option without building a model, so the parent
process of a GPU run never touches CUDA; `build_stages` runs in the worker that uses them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from syncxr.errors import UserError
from syncxr.image.base import GENERATORS
from syncxr.pipeline.config import GenerateConfig
from syncxr.stage import Stage, check_chain
from syncxr.qc.base import FEATURES
from syncxr.registry import Registry
from syncxr.text.base import EXTRACTORS, WRITERS
from syncxr.vocab import Ontology, load_ontology

log = logging.getLogger(__name__)

BACKENDS: dict[str, Registry[Any]] = {
    "extractor": EXTRACTORS,
    "writer": WRITERS,
    "generator": GENERATORS,
    "features": FEATURES,
}

# Fields every Sample has before the first stage runs (the plan fills them).
PLANNED_FIELDS = ("sample_id", "index", "seed", "entities")


def build_backend(kind: str, name: str, options: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None) -> Any:
    """Build backend `name` of `kind` ("extractor", "writer", "generator", "features")."""
    return BACKENDS[kind].create(name, options or {}, context)


def chosen_backends(cfg: GenerateConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, options) of every backend the config uses."""
    chosen = [
        ("extractor", cfg.extract.backend, cfg.extract.options),
        ("writer", cfg.write.backend, cfg.write.options),
        ("generator", cfg.image.backend, cfg.image.options),
    ]
    if cfg.qc.enabled:
        chosen.append(("features", cfg.qc.features, cfg.qc.feature_options))
    return [(kind, name, dict(options)) for kind, name, options in chosen]


def context_of(cfg: GenerateConfig, ontology: Ontology | None, extractor: Any = None) -> dict[str, Any]:
    """The shared objects a backend may ask for by parameter name."""
    size = cfg.image.size
    return {
        "ontology": ontology,
        "filler": cfg.write.filler,
        "size": size,
        "height": size,  # diffusion pipelines take height and width
        "width": size,
        "extractor": extractor,
    }


def validate_backends(cfg: GenerateConfig) -> None:
    """Check every backend name and option before any work or output; builds no model."""
    context = context_of(cfg, ontology=None)
    for kind, name, options in chosen_backends(cfg):
        registry = BACKENDS[kind]
        section = "qc" if kind == "features" else _section(kind)
        if name not in registry:
            key = "qc.features" if kind == "features" else f"{section}.backend"
            raise UserError(f"unknown {kind} backend {name!r} ({key}); valid names: {', '.join(registry.names())}")
        try:
            registry.check(name, options, context)
        except UserError as e:
            where = "qc.feature_options" if kind == "features" else f"{section}.options"
            raise UserError(f"{e} (config: {where})") from None


def preflight(cfg: GenerateConfig) -> None:
    """Cheap checks that need the outside world (a server's credentials, reachability), run in
    the parent before any work: a factory may offer `preflight(options)`, which raises a
    UserError (exit 2) naming what to fix. Builds no model."""
    for kind, name, options in chosen_backends(cfg):
        hook = getattr(BACKENDS[kind].get(name), "preflight", None)
        if callable(hook):
            hook(options)


def weight_fingerprints(cfg: GenerateConfig) -> dict[str, str]:
    """kind:name -> fingerprint of the weights each chosen backend loads, computed without loading
    them (a factory may offer `fingerprint(options)`, e.g. the LLM writer's served model)."""
    from syncxr.weights import fingerprint

    out = {}
    for kind, name, options in chosen_backends(cfg):
        hook = getattr(BACKENDS[kind].get(name), "fingerprint", None)
        if callable(hook):
            out[f"{kind}:{name}"] = hook(options)
        elif "model" in options:
            out[f"{kind}:{name}"] = fingerprint(options["model"])
    return out


def _section(kind: str) -> str:
    return {"extractor": "extract", "writer": "write", "generator": "image"}[kind]


def ontology_of(cfg: GenerateConfig) -> Ontology:
    try:
        return load_ontology(cfg.ontology)
    except FileNotFoundError as e:
        raise UserError(f"{e}; set `ontology:` to an existing YAML file or leave it empty") from None
    except ValueError as e:
        raise UserError(f"ontology {cfg.ontology or '(bundled)'}: {e}") from None


def build_extractor(cfg: GenerateConfig, ontology: Ontology | None = None) -> Any:
    ontology = ontology or ontology_of(cfg)
    return build_backend("extractor", cfg.extract.backend, cfg.extract.options, context_of(cfg, ontology))


STAGE_NAMES = ("write", "label", "image")


def build_stages(cfg: GenerateConfig, bank_path: Path | None) -> list[Stage]:
    """The per-sample stages, in order: write+verify, label, image (+QC); the chain is checked.
    One extractor serves the verifier and the phantom generator."""
    ontology = ontology_of(cfg)
    extractor = build_extractor(cfg, ontology)
    stages = [build_stage(cfg, name, bank_path, ontology, extractor) for name in STAGE_NAMES]
    check_chain(stages, PLANNED_FIELDS)
    return stages


def build_stage(
    cfg: GenerateConfig,
    name: str,
    bank_path: Path | None,
    ontology: Ontology | None = None,
    extractor: Any = None,
) -> Stage:
    """One stage with only the models it needs (an executor may place stages on different
    workers or GPUs)."""
    from syncxr.image.stage import ImageStage
    from syncxr.text.stages import LabelStage, WriteVerifyStage

    ontology = ontology or ontology_of(cfg)
    if name == "label":
        return LabelStage(ontology)
    extractor = extractor or build_extractor(cfg, ontology)
    context = context_of(cfg, ontology, extractor)
    if name == "write":
        writer = build_backend("writer", cfg.write.backend, cfg.write.options, context)
        return WriteVerifyStage(writer, build_verifier(cfg, extractor), max_attempts=cfg.write.max_attempts,
                                enforce=cfg.verify.enabled)
    if name == "image":
        generator = build_backend("generator", cfg.image.backend, cfg.image.options, context)
        if cfg.image.defect_rate > 0:
            from syncxr.qc.faults import FaultyGenerator

            generator = FaultyGenerator(generator, cfg.image.defect_rate, cfg.image.defects)
        return ImageStage(
            generator,
            image_filter=build_filter(cfg, bank_path) if cfg.qc.enabled else None,
            max_attempts=cfg.image.max_attempts,
            compress_level=cfg.image.png_compress_level,
        )
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def build_verifier(cfg: GenerateConfig, extractor: Any) -> Any:
    from syncxr.text.verify import DEFAULT_BOILERPLATE, Verifier

    v = cfg.verify
    return Verifier(
        extractor,
        mode=v.mode,
        check_attributes=v.check_attributes,
        allow_extra=v.allow_extra,
        unknown=v.unknown,
        boilerplate=DEFAULT_BOILERPLATE if v.boilerplate is None else v.boilerplate,
        impression=v.impression,
    )


def build_features(cfg: GenerateConfig) -> Any:
    return build_backend("features", cfg.qc.features, cfg.qc.feature_options)


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
