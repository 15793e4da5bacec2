"""The entity plan: the balanced sampler run once, globally, before sharding.

The plan is held as one compact JSON string per sample (a list of Entity dicts), which keeps the
parent's memory small at 200k samples and is cheap to send to workers.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from syncxr.pipeline.config import GenerateConfig

log = logging.getLogger(__name__)


PLAN_CHUNK = 5000


def _range(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def reference_counts(cfg: GenerateConfig) -> dict[str, int] | None:
    """Entity-key counts of a reference corpus (reports run through the extractor), or None."""
    if cfg.entities.source == "ontology":
        return None
    from syncxr.pipeline.build import build_extractor, ontology_of

    extractor = build_extractor(cfg)
    if cfg.entities.source == "sim":
        from syncxr.sim.corpus import sim_reference_counts

        counts = sim_reference_counts(cfg.entities.sim_reports, cfg.seed, extractor)
    else:
        from syncxr.text.corpus import corpus_entity_counts

        counts = corpus_entity_counts(cfg.entities.corpus, cfg.entities.corpus_text_columns, extractor)
    return canonical_counts(counts, ontology_of(cfg))


def canonical_counts(counts: dict[str, int], ontology: Any) -> dict[str, int]:
    """Counts keyed by the ontology's own keys: a type the extractor gives differently (DISEASE
    for ABNORMALITY) counts for the same concept and polarity; unknown concepts are left out."""
    from syncxr.vocab.conflicts import canonical_key

    out: Counter = Counter()
    unknown = []
    for key, count in counts.items():
        canon = canonical_key(ontology, key)
        if canon is None:
            unknown.append(key)
        else:
            out[canon] += count
    if unknown:  # e.g. a NER backend's entities that map to no ontology concept
        log.warning("%d extracted entity keys are not in the ontology and are left out of the pool, e.g. %s",
                    len(unknown), sorted(unknown)[:5])
    return dict(out)


def _undrawable(cfg: GenerateConfig, ontology: Any) -> set[str]:
    """Findings the configured image backend cannot show (the built-in phantom declares them)."""
    if cfg.image.backend != "phantom":
        return set()
    from syncxr.image.phantom.generator import undrawable

    return undrawable(ontology)


def make_plan(cfg: GenerateConfig, n: int | None = None, stream: str = "") -> tuple[list[str], dict[str, Any]]:
    """Returns (per-sample JSON entity lists, info for the manifest/card) for `n` samples
    (default: cfg.n_planned). `stream` names an independent random stream (the top-up round's)."""
    from syncxr.pipeline.build import ontology_of
    from syncxr.records import derive_seed
    from syncxr.text.sample import BalancedSampler

    n = cfg.n_planned if n is None else n
    ontology = ontology_of(cfg)
    counts = reference_counts(cfg)
    sampler = BalancedSampler(
        ontology,
        k=_range(cfg.entities.k),
        m=_range(cfg.entities.m),
        tau_max=cfg.entities.tau_max,
        counts=counts,
        seed=derive_seed(cfg.seed, "plan", stream) if stream else cfg.seed,
        exclude_present=sorted(_undrawable(cfg, ontology)),
        p_uncertain=cfg.entities.uncertain_rate,
        balance=cfg.entities.balance,
    )
    if sampler.tau_max is None and sampler.balance:
        sampler.tau_max = sampler.auto_tau(n)  # caps sized for the whole plan, margin included
    # Sample in chunks and keep only compact JSON: the sampler continues one sequence across calls,
    # so this is the same plan as one call, with a fraction of the peak memory.
    plan: list[str] = []
    for start in range(0, n, PLAN_CHUNK):
        sets = sampler.sample(min(PLAN_CHUNK, n - start))  # PoolExhausted (a UserError) explains
        plan.extend(json.dumps([e.to_dict() for e in ents], separators=(",", ":")) for ents in sets)
    usage = Counter(sampler.usage)
    info = {
        "balanced": sampler.balance,
        "tau_max": sampler.tau_max,
        "k": list(_range(cfg.entities.k)),
        "m": list(_range(cfg.entities.m)),
        "pool_size": len(sampler.keys),
        "not_offered": sorted(_undrawable(cfg, ontology)),  # present findings the image backend cannot show
        "balance": sampler.balance_stats(),
        "reference_counts": dict(counts) if counts else None,
        "sampled_counts": dict(sorted(usage.items())),
    }
    return plan, info
