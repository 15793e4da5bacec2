"""Balanced entity sampling (SynCXR step 2).

Each synthetic report gets k entities drawn from the four non-anatomy types (ABNORMALITY,
NON-ABNORMALITY, DISEASE, NON-DISEASE) and m ANATOMY entities. Draws are uniform over the entity
pool that is still open, which flattens the long tail of a reference corpus; an entity used
`tau_max` times leaves the pool. Contradictory pairs never share a report (see `Conflicts`).

Defaults: k = [2, 5] and m = [1, 2] (inclusive ranges, one value drawn per report).
`tau_max=None` picks the cap at the first `sample(n)` call as

    tau_max = ceil(TAU_SLACK * n * hi / pool_size)      for (k, non-anatomy pool) and (m, anatomy pool)

taking the larger of the two, so that even the entities drawn most often (uniform draws are not
exactly even once conflicts reject some) keep being available up to the last report.

Attribute rule: every declared attribute (laterality / severity / zone / count) of a present entity is
drawn with probability `p_attribute`, uniformly over its values; negated entities carry none.
A present entity that declares laterality or zone then adopts the side / zone of one sampled
ANATOMY entity that fixes at least one of those kinds (chosen uniformly when several do), so
"right lower lobe" + consolidation gives consolidation{laterality: right, zone: lower}.
A bilateral finding is never "single": its count becomes "multiple" (one lesion cannot lie on both sides).

`balance=False` is the paper's "without balanced sampling" ablation: each draw picks an entity
with probability proportional to its reference-corpus count (the long tail kept) and no cap
applies. Without reference counts there is no tail to keep, so the draws are uniform.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from syncxr.errors import UserError
from syncxr.records import ABSENT, PRESENT, UNCERTAIN, Entity
from syncxr.vocab import COUNT, LATERALITY, SEVERITY, ZONE, Concept, Ontology
from syncxr.vocab.conflicts import Conflicts, is_negated, split_key  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

DEFAULT_K = (2, 5)
DEFAULT_M = (1, 2)
TAU_SLACK = 1.5
ATTRIBUTE_VALUES = {"laterality": LATERALITY, "severity": SEVERITY, "zone": ZONE, "count": COUNT}


class PoolExhausted(UserError):
    """The pool could not fill a report; `reports` holds the `made` reports sampled before."""

    def __init__(self, made: int, requested: int, reports: list[list[Entity]], why: str) -> None:
        self.made = made
        self.requested = requested
        self.reports = reports
        super().__init__(
            f"entity pool exhausted after {made} of {requested} reports: {why}. "
            "Raise tau_max, lower k/m, or sample fewer reports."
        )


def _as_range(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        lo = hi = int(value)
    else:
        try:
            lo, hi = (int(v) for v in value)
        except (TypeError, ValueError):
            raise UserError(f"{what} must be an int or an inclusive [lo, hi] pair, got {value!r}") from None
    if not 0 <= lo <= hi:
        raise UserError(f"{what} range must satisfy 0 <= lo <= hi, got [{lo}, {hi}]")
    return lo, hi


@dataclass
class _Pool:
    """Open entity indices with O(1) uniform choice and removal (swap with the last)."""

    items: list[int]
    pos: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.pos = {x: i for i, x in enumerate(self.items)}

    def remove(self, x: int) -> None:
        i = self.pos.pop(x)
        last = self.items.pop()
        if last != x:
            self.items[i] = last
            self.pos[last] = i


class _Uniform:
    """Uniform floats in [0, 1) from a numpy Generator, drawn in blocks (scalar calls are slow)."""

    def __init__(self, rng: np.random.Generator, block: int = 8192) -> None:
        self.rng, self.block = rng, block
        self.buf: list[float] = []
        self.i = 0

    def __call__(self) -> float:
        if self.i >= len(self.buf):
            self.buf = self.rng.random(self.block).tolist()
            self.i = 0
        self.i += 1
        return self.buf[self.i - 1]

    def index(self, n: int) -> int:
        return min(int(self() * n), n - 1)

    def between(self, lo: int, hi: int) -> int:
        return lo + self.index(hi - lo + 1)


class BalancedSampler:
    """Sequential, seeded balanced sampler over an ontology's entity keys (module docstring).

    `counts` (entity key -> count in a reference corpus) restricts the pool to the keys seen
    there; the counts are kept as `reference_counts` to report the distribution before balancing.
    """

    MAX_REJECTIONS = 8  # rejected uniform draws before falling back to an explicit eligible list

    def __init__(
        self,
        ontology: Ontology,
        k: int | Sequence[int] = DEFAULT_K,
        m: int | Sequence[int] = DEFAULT_M,
        tau_max: int | None = None,
        counts: Mapping[str, int] | None = None,
        seed: int = 0,
        p_attribute: float = 0.7,
        exclude_present: Sequence[str] = (),
        p_uncertain: float = 0.0,
        balance: bool = True,
    ) -> None:
        self.ontology = ontology
        self.balance = bool(balance)
        self.k, self.m = _as_range(k, "k"), _as_range(m, "m")
        if tau_max is not None and int(tau_max) < 1:
            raise UserError(f"tau_max must be >= 1 (or None for automatic), got {tau_max}")
        self.tau_max = None if tau_max is None else int(tau_max)
        self.p_attribute = float(p_attribute)
        if not 0.0 <= p_uncertain <= 1.0:
            raise UserError(f"uncertain rate must be in [0, 1], got {p_uncertain}")
        self.p_uncertain = float(p_uncertain)
        self.reference_counts = self._check_counts(counts) if counts is not None else None
        keys = sorted(self.reference_counts) if counts is not None else ontology.all_keys()
        # Present findings an image backend cannot show (their negations stay: "no kyphosis").
        hidden = {f"{n}|{ontology.by_name[n].type}" for n in exclude_present if n in ontology.by_name}
        self.keys = [k for k in keys if k not in hidden]
        self._by_name = by_name = ontology.by_name  # a property that rebuilds the dict: keep one
        self._concepts = [by_name[split_key(key)[0]] for key in self.keys]
        self._types = [split_key(key)[1] for key in self.keys]
        self._negated = [is_negated(c, t) for c, t in zip(self._concepts, self._types)]
        self._conflicts = Conflicts(ontology).table(self.keys)
        anatomy = [i for i, t in enumerate(self._types) if t == "ANATOMY"]
        findings = [i for i, t in enumerate(self._types) if t != "ANATOMY"]
        self._check_sizes(len(findings), len(anatomy))
        self._findings, self._anatomy = _Pool(findings), _Pool(anatomy)
        self._used = [0] * len(self.keys)
        self._rand = _Uniform(np.random.default_rng(seed))
        # balance=False: cumulative reference counts per pool, for draws proportional to them.
        self._cumulative: dict[int, list[float]] = {}
        if not self.balance:
            weight = [float(self.reference_counts[k]) if self.reference_counts else 1.0 for k in self.keys]
            for pool in (self._findings, self._anatomy):
                self._cumulative[id(pool)] = np.cumsum([weight[i] for i in pool.items]).tolist()

    # ---- validation -------------------------------------------------------------------------

    def _check_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        known = set(self.ontology.all_keys())
        out = {}
        for key, c in counts.items():
            if key not in known:
                raise UserError(
                    f"reference counts: unknown entity key {key!r}; expected a 'name|TYPE' key of the "
                    "ontology (see Ontology.all_keys()); re-extract the corpus with the same ontology"
                )
            if int(c) < 0:
                raise UserError(f"reference counts: key {key!r} has negative count {c}")
            if int(c) > 0:
                out[key] = int(c)
        return out

    def _check_sizes(self, n_findings: int, n_anatomy: int) -> None:
        if n_findings < self.k[0]:
            raise UserError(f"entity pool has {n_findings} non-anatomy keys but k >= {self.k[0]} per report")
        if n_anatomy < self.m[0]:
            raise UserError(
                f"entity pool has {n_anatomy} ANATOMY keys but m >= {self.m[0]} per report; set m=0 "
                "or add ANATOMY concepts"
            )

    # ---- public -----------------------------------------------------------------------------

    @property
    def usage(self) -> dict[str, int]:
        """Entity key -> times used so far (keys never drawn included with 0)."""
        return dict(zip(self.keys, self._used))

    def auto_tau(self, n: int) -> int:
        """The default cap for `n` reports (module docstring)."""
        need = [
            TAU_SLACK * n * hi / size
            for (_, hi), size in ((self.k, len(self._findings.pos)), (self.m, len(self._anatomy.pos)))
            if size
        ]
        return max(1, math.ceil(max(need, default=1)))

    def sample(self, n: int) -> list[list[Entity]]:
        """The next `n` entity sets; raises PoolExhausted (carrying those made) if the pool runs dry."""
        if not self.balance:
            self.tau_max = None  # the natural distribution: no cap
        elif self.tau_max is None:
            self.tau_max = self.auto_tau(n)
            log.info("balanced sampler: tau_max=%d for n=%d over %d keys", self.tau_max, n, len(self.keys))
        out: list[list[Entity]] = []
        for _ in range(n):
            k, m = self._rand.between(*self.k), self._rand.between(*self.m)
            chosen = self._draw(self._findings, k, [])
            if chosen is not None:
                chosen = self._draw(self._anatomy, m, chosen)
            if chosen is None:
                why = (
                    f"could not draw {k} non-anatomy + {m} anatomy mutually consistent entities with "
                    f"{len(self._findings.items)} non-anatomy and {len(self._anatomy.items)} anatomy keys "
                    f"left under tau_max={self.tau_max}"
                )
                raise PoolExhausted(len(out), n, out, why)
            self._commit(chosen)
            out.append(self._entities(chosen))
        return out

    def balance_stats(self) -> dict[str, float]:
        """Flatness of the usage (and of the reference counts, when given): max/min ratio over
        the pool's keys and entropy normalised to [0, 1] (1 = perfectly uniform)."""
        stats = {f"usage_{k}": v for k, v in _flatness(self._used).items()}
        if self.reference_counts is not None:
            ref = [self.reference_counts[k] for k in self.keys]
            stats.update({f"reference_{k}": v for k, v in _flatness(ref).items()})
        return stats

    # ---- internals --------------------------------------------------------------------------

    def _draw(self, pool: _Pool, need: int, chosen: list[int]) -> list[int] | None:
        """Add `need` distinct, mutually consistent indices from `pool` to `chosen` (uniform over
        the eligible ones at each step), or None when the pool cannot supply them."""
        chosen = list(chosen)
        blocked: set[int] = set(chosen)
        for i in chosen:
            blocked |= self._conflicts[i]
        for _ in range(need):
            pick = None
            for _ in range(self.MAX_REJECTIONS):
                if not pool.items:
                    return None
                cand = self._candidate(pool)
                if cand not in blocked:
                    pick = cand
                    break
            if pick is None:
                eligible = [i for i in pool.items if i not in blocked]
                if not eligible:
                    return None
                pick = self._pick_eligible(eligible)
            chosen.append(pick)
            blocked.add(pick)
            blocked |= self._conflicts[pick]
        return chosen

    def _candidate(self, pool: _Pool) -> int:
        """One draw from the open pool: uniform (balanced) or by reference count (balance=False;
        the pool never shrinks then, so its cumulative counts stay valid)."""
        if self.balance:
            return pool.items[self._rand.index(len(pool.items))]
        cum = self._cumulative[id(pool)]
        return pool.items[min(bisect.bisect_right(cum, self._rand() * cum[-1]), len(cum) - 1)]

    def _pick_eligible(self, eligible: list[int]) -> int:
        if self.balance:
            return eligible[self._rand.index(len(eligible))]
        ref = self.reference_counts
        cum = np.cumsum([float(ref[self.keys[i]]) if ref else 1.0 for i in eligible]).tolist()
        return eligible[min(bisect.bisect_right(cum, self._rand() * cum[-1]), len(cum) - 1)]

    def _commit(self, chosen: list[int]) -> None:
        for i in chosen:
            self._used[i] += 1
            if self.tau_max is not None and self._used[i] >= self.tau_max:
                pool = self._anatomy if self._types[i] == "ANATOMY" else self._findings
                pool.remove(i)

    def _entities(self, chosen: list[int]) -> list[Entity]:
        out = []
        for i in chosen:
            concept = self._concepts[i]
            if self._negated[i]:
                out.append(Entity(concept.name, self._types[i], ABSENT))
            else:
                attrs = self._attributes(concept)
                assertion = self._assertion(concept)
                if assertion == UNCERTAIN and attrs.get("severity") in ("moderate", "severe"):
                    # radiologists hedge what is subtle: "large effusion cannot be excluded" is never
                    # written, so a hedged finding is at most mild (no extra draw: other rows keep their bytes)
                    attrs["severity"] = "mild"
                out.append(Entity(concept.name, self._types[i], assertion, attrs))
        self._adopt_anatomy(out)
        for e in out:
            if e.attributes.get("laterality") == "bilateral" and e.attributes.get("count") == "single":
                e.attributes["count"] = "multiple"
        return out

    def _assertion(self, concept: Concept) -> str:
        """Present, or (at p_uncertain, for findings) hedged: real reports hedge some findings,
        never a device ("Swan-Ganz catheter cannot be excluded" is not how anyone writes). The
        draw is made for devices too, so every other entity's draws stay where they were."""
        if self.p_uncertain > 0 and concept.type in ("ABNORMALITY", "DISEASE") and self._rand() < self.p_uncertain:
            return PRESENT if concept.region == "device" else UNCERTAIN
        return PRESENT

    def _attributes(self, concept: Concept) -> dict[str, str]:
        attrs = {}
        for kind in concept.attributes:
            if self._rand() < self.p_attribute:
                values = concept.allowed(kind)  # e.g. a PICC is left or right, never bilateral
                attrs[kind] = values[self._rand.index(len(values))]
        return attrs

    def _adopt_anatomy(self, entities: list[Entity]) -> None:
        by_name = self._by_name
        fixed = [
            by_name[e.name] for e in entities
            if e.type == "ANATOMY" and (by_name[e.name].anatomy_side or by_name[e.name].anatomy_zone)
        ]
        if not fixed:
            return
        for e in entities:
            if e.type == "ANATOMY" or e.assertion == ABSENT:
                continue
            declared = by_name[e.name].attributes
            concept = by_name[e.name]
            fits = [
                a for a in fixed
                if (a.anatomy_side and "laterality" in declared and a.anatomy_side in concept.allowed("laterality"))
                or (a.anatomy_zone and "zone" in declared and a.anatomy_zone in concept.allowed("zone"))
            ]
            if not fits:
                continue
            a = fits[self._rand.index(len(fits))]
            if a.anatomy_side and "laterality" in declared and a.anatomy_side in concept.allowed("laterality"):
                e.attributes["laterality"] = a.anatomy_side
            if a.anatomy_zone and "zone" in declared and a.anatomy_zone in concept.allowed("zone"):
                e.attributes["zone"] = a.anatomy_zone


def _flatness(values: Sequence[int]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    if v.size == 0 or v.sum() == 0:
        return {"max_min_ratio": float("nan"), "entropy": float("nan")}
    p = v / v.sum()
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(v.size)) if v.size > 1 else 1.0
    ratio = float(v.max() / v.min()) if v.min() > 0 else float("inf")
    return {"max_min_ratio": ratio, "entropy": entropy}
