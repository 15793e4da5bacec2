"""The dataset card: card.md (+ card_assets/*.png) and a self-contained card.html.

Everything is computed by streaming the shards and rejects one file at a time, so the card of a
200k-sample dataset needs little memory.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from syncxr.data.shards import REJECTS_DIR, SHARDS_DIR, write_text_atomic
from syncxr.errors import UserError
from syncxr.data.manifest import read_manifest
from syncxr.records import CHEXPERT14, CHEXPERT14_SNAKE
from syncxr.report import plots
from syncxr.report.consistency import GREY_FLOOR, Consistency, midline_of
from syncxr.report.card_realism import read_realism, realism_section
from syncxr.report.markdown import table, to_html
from syncxr.vocab import Ontology, load_ontology

GRID_N = 16
CONSISTENCY_ROWS = 2000  # rows measured for the image-report consistency section (decoding is the cost)


@dataclass
class CardStats:
    n_ok: int = 0
    label_counts: dict[str, Counter] = field(default_factory=lambda: {k: Counter() for k in CHEXPERT14_SNAKE})
    cooc: np.ndarray = field(default_factory=lambda: np.zeros((14, 14), dtype=np.int64))
    entity_counts: Counter = field(default_factory=Counter)
    write_attempts: Counter = field(default_factory=Counter)
    image_attempts: Counter = field(default_factory=Counter)
    bank_sims: list[float] = field(default_factory=list)
    retry_reasons: Counter = field(default_factory=Counter)  # "stage: reason" of retries before acceptance
    reject_reasons: Counter = field(default_factory=Counter)
    reject_examples: dict[str, str] = field(default_factory=dict)
    unverified: int = 0  # accepted reports that failed verification (verify.enabled: false)
    faults_kept: Counter = field(default_factory=Counter)  # accepted films with an acquisition fault, by kind
    grid: list[tuple[bytes, str, list[tuple[str, bytes]]]] = field(default_factory=list)
    spare: list[tuple[bytes, str, list[tuple[str, bytes]]]] = field(default_factory=list)
    grid_concepts: set[str] = field(default_factory=set)
    consistency: Consistency | None = None


def collect(folder: Path, ontology: Ontology | None = None) -> CardStats:
    st = CardStats(consistency=Consistency(ontology or load_ontology()))
    cols = ["image_png", "impression", "entities", "extracted", "masks", "qc", "write_attempts", "image_attempts", "history",
            *CHEXPERT14_SNAKE]
    for path in sorted((folder / SHARDS_DIR).glob("shard-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=512, columns=cols):
            _add_batch(st, batch.to_pydict())
    st.grid += st.spare[: GRID_N - len(st.grid)]
    for path in sorted((folder / REJECTS_DIR).glob("shard-*.parquet")):
        t = pq.read_table(path, columns=["stage", "reason", "detail"]).to_pydict()
        for stage, reason, detail in zip(t["stage"], t["reason"], t["detail"]):
            key = f"{stage}: {reason}"
            st.reject_reasons[key] += 1
            st.reject_examples.setdefault(key, detail[:200])
    return st


def _add_batch(st: CardStats, d: dict) -> None:
    n = len(d["impression"])
    st.n_ok += n
    pos = np.zeros((n, 14), dtype=bool)
    for j, label in enumerate(CHEXPERT14_SNAKE):
        for i, v in enumerate(d[label]):
            st.label_counts[label][{1.0: "positive", 0.0: "negative", -1.0: "uncertain"}.get(v, "blank")] += 1
            pos[i, j] = v == 1.0
    st.cooc += pos.T.astype(np.int64) @ pos.astype(np.int64)
    for ents in d["entities"]:
        st.entity_counts.update(f"{e['name']}|{e['type']}" for e in json.loads(ents))
    for hist in d["history"]:
        entries = json.loads(hist or "[]")
        st.unverified += any(h.startswith("unverified:") for h in entries)
        st.retry_reasons.update(_retry_key(h) for h in entries if not h.startswith("unverified:"))
    st.write_attempts.update(d["write_attempts"])
    st.image_attempts.update(d["image_attempts"])
    for q in d["qc"]:
        scores = json.loads(q)
        st.faults_kept.update(k[len("defect_"):] for k in scores if k.startswith("defect_"))
        sim = scores.get("bank_max_sim")
        if sim is not None:
            st.bank_sims.append(float(sim))
    for png, imp, masks, ents, got, q in zip(d["image_png"], d["impression"], d["masks"], d["entities"], d["extracted"], d["qc"]):
        _offer_to_grid(st, png, imp, [(m["name"], m["png"]) for m in masks])
        if st.consistency is not None and st.consistency.rows < CONSISTENCY_ROWS:
            st.consistency.add(ents, masks, png, got or "", midline_of(q))


MASK_COLOURS = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan")


def _offer_to_grid(st: CardStats, png: bytes, imp: str, masks: list[tuple[str, bytes]]) -> None:
    """Keep a varied sample grid: a row joins when it shows a concept the grid lacks (or a
    normal film, once); others wait as spares for the places left. Captions name the mask
    colours (matplotlib's C0, C1, ... as drawn by plots.sample_grid)."""
    names = [n for n, _ in masks]
    legend = "; ".join(f"{MASK_COLOURS[i % 10]}={n}" for i, n in enumerate(names))
    item = (png, f"{imp} [masks: {legend or 'none'}]", masks)
    key = set(names) or {"(normal)"}
    if len(st.grid) < GRID_N and not key <= st.grid_concepts:
        st.grid.append(item)
        st.grid_concepts |= key
    elif len(st.spare) < GRID_N:
        st.spare.append(item)


def _retry_key(entry: str) -> str:
    """'image#1: qc_bank_similarity nearest=rotated' -> 'image: qc_bank_similarity'."""
    stage, _, rest = entry.partition(":")
    return f"{stage.split('#')[0]}: {(rest.split() or ['?'])[0]}"


def write_card(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise UserError(f"{folder}: no manifest.json; is this a syncxr dataset folder?")
    onto = manifest.get("config", {}).get("ontology")
    try:
        st = collect(folder, load_ontology(onto) if onto else None)
    except (FileNotFoundError, ValueError):  # a custom ontology moved since: measure with the bundled one
        st = collect(folder)
    figs = _figures(manifest, st)
    assets = folder / "card_assets"
    assets.mkdir(exist_ok=True)
    for name, png in figs.items():
        write_text_atomic(png, assets / f"{name}.png")
    realism = read_realism(folder)
    md = render_markdown({**manifest, "realism": realism} if realism else manifest, st, {k: f"card_assets/{k}.png" for k in figs})
    write_text_atomic(md, folder / "card.md")
    write_text_atomic(to_html(md, figs, "syncxr dataset card", lambda alt, target: Path(target).stem), folder / "card.html")
    return [folder / "card.md", folder / "card.html"]


def _figures(manifest: dict, st: CardStats) -> dict[str, bytes]:
    plan = manifest.get("plan") or {}
    figs = {
        # balance as delivered: the accepted pairs' entities (the plan holds a margin for rejects)
        "entities": plots.entity_distribution(plan.get("reference_counts"), dict(st.entity_counts) or plan.get("sampled_counts")),
        "labels": plots.label_frequencies(st.label_counts, CHEXPERT14_SNAKE),
        "cooccurrence": plots.cooccurrence(st.cooc, CHEXPERT14),
        "outcomes": plots.outcomes(st.write_attempts, st.image_attempts, st.bank_sims, manifest),
    }
    if st.grid:
        figs["samples"] = plots.sample_grid(st.grid)
    return figs


def render_markdown(manifest: dict, st: CardStats, img: dict[str, str]) -> str:
    cfg = manifest["config"]
    plan = manifest.get("plan") or {}
    lines = _intro() + _summary_section(manifest, st) + _entities_section(cfg, plan, st, img)
    lines += _labels_section(st, img) + _outcomes_section(cfg, st, img)
    lines += _consistency_section(st.consistency)
    lines += realism_section(manifest.get("realism"))
    if "samples" in img:
        lines += ["## Samples", "", "Pairs chosen to show as many different drawn concepts as possible, with their "
                  "IMPRESSION; mask outlines in colour, named in each caption.", "",
                  f"![samples]({img['samples']})", ""]
    lines += _throughput_and_files(manifest.get("throughput_last_run") or {})
    return "\n".join(lines)


def _intro() -> list[str]:
    return [
        "# syncxr dataset card",
        "",
        "Synthetic chest X-ray image–report pairs built with the SynCXR recipe (Liu et al., *Can Medical "
        "Vision-Language Pre-training Succeed with Purely Synthetic Data?*): entities sampled with a "
        "balanced distribution, reports written from them, verified by re-extraction, images drawn from "
        "the IMPRESSION, and images filtered against a bank of problematic ones.",
        "",
        "**Synthetic data: not for clinical use.** Labels are those the generator intended; the built-in "
        "backends (phantom renderer, grammar writer) are simplified models of radiographs and reports.",
        "",
        "**Intended use:** pretraining and ablation studies of medical vision-language models, and testing "
        "data pipelines; not diagnosis, not a benchmark of clinical accuracy. The `no_finding` column is "
        "the extractor-derived label described in `syncxr.text.labels`; the image-report consistency "
        "section below says how often an asserted finding is actually drawn.",
        "",
    ]


def _summary_section(manifest: dict, st: CardStats) -> list[str]:
    cfg, counts, plan = manifest["config"], manifest.get("counts", {}), manifest.get("plan") or {}
    n_rej = sum(st.reject_reasons.values())
    total = st.n_ok + n_rej
    return [
        "## Summary",
        "",
        table(
            ["item", "value"],
            [
                ["accepted pairs", st.n_ok],
                ["rejected", f"{n_rej} ({100 * n_rej / max(total, 1):.1f}%)"],
                ["requested (accepted pairs asked for)", counts.get("requested", cfg.get("n"))],
                ["planned samples", f"{plan.get('planned', '-')} (margin {plan.get('margin', '-')} for rejects; "
                                    f"top-up round: {(plan.get('top_up') or {}).get('samples', 0)} samples)"],
                ["present findings not offered", ", ".join(plan.get("not_offered") or []) or "none"],
                ["image size", f"{cfg['image']['size']}×{cfg['image']['size']} 8-bit grayscale PNG"],
                ["backends", f"extract={cfg['extract']['backend']}, write={cfg['write']['backend']}, "
                             f"image={cfg['image']['backend']}, qc={cfg['qc']['features'] if cfg['qc']['enabled'] else 'off'}"],
                ["seed", cfg["seed"]],
                ["config hash", manifest.get("config_hash")],
                ["shards", len(manifest.get("shards", []))],
                ["syncxr", manifest.get("versions", {}).get("syncxr")],
            ],
        ),
        "",
    ]


def _entities_section(cfg: dict, plan: dict, st: CardStats, img: dict[str, str]) -> list[str]:
    return [
        "## Entity distribution before vs after balancing",
        "",
        f"Per report: k = {plan.get('k')} non-anatomy entities, m = {plan.get('m')} ANATOMY entities; "
        + (f"each entity used at most tau_max = {plan.get('tau_max')} times; pool of {plan.get('pool_size')} entities."
         if plan.get("balanced", True) else
         f"**balanced sampling off** (entities.balance: false): entities drawn at the reference corpus's "
         f"frequencies, no cap; pool of {plan.get('pool_size')} entities."),
        _balance_sentence(plan, (cfg.get("entities") or {}).get("source", ""), dict(st.entity_counts)),
        "",
        f"![entity distribution]({img['entities']})",
        "",
    ]


def _labels_section(st: CardStats, img: dict[str, str]) -> list[str]:
    return [
        "## CheXpert-14 label frequencies",
        "",
        "Labels are read back from the written report by the extractor (1 positive, 0 negative, -1 uncertain).",
        "",
        table(
            ["label", "positive", "negative", "uncertain", "blank"],
            [[lab] + [st.label_counts[s][k] for k in ("positive", "negative", "uncertain", "blank")]
             for lab, s in zip(CHEXPERT14, CHEXPERT14_SNAKE)],
        ),
        "",
        f"![label frequencies]({img['labels']})",
        "",
        "## Co-occurrence of positive labels",
        "",
        f"![co-occurrence]({img['cooccurrence']})",
        "",
    ]


def _outcomes_section(cfg: dict, st: CardStats, img: dict[str, str]) -> list[str]:
    return [
        "## Verification and QC outcomes",
        "",
        f"Verification mode: `{cfg['verify']['mode']}`; up to {cfg['write']['max_attempts']} writes and "
        f"{cfg['image']['max_attempts']} image draws per sample.",
        "",
        table(["attempts", "report writes (accepted)", "image draws (accepted)"],
               [[a, st.write_attempts.get(a, 0), st.image_attempts.get(a, 0)]
                for a in sorted(set(st.write_attempts) | set(st.image_attempts))]),
        "",
        *_causes_section(st),
        f"![outcomes]({img['outcomes']})",
        "",
    ]


def _throughput_and_files(tp: dict) -> list[str]:
    return [
        "## Throughput (last run)",
        "",
        table(["measure", "value"], [[k, v] for k, v in tp.items() if not isinstance(v, dict)]
               + [[f"stage {k} (samples/s per worker)", v] for k, v in (tp.get("stage_samples_per_second") or {}).items()]),
        "",
        "## Files",
        "",
        "`shards/*.parquet` (one row per pair: `image_png`, `masks`, `findings`, `impression`, `report`, "
        "`entities`, `extracted`, the 14 CheXpert label columns, `qc`, attempts, `seed`), `rejects/*.parquet`, "
        "`manifest.json` (resolved config, versions, per-shard sha256). Load with "
        "`pandas.read_parquet('shards')` or `datasets.load_dataset('parquet', data_files='shards/*.parquet')`.",
        "",
    ]


def _consistency_section(c: Consistency | None) -> list[str]:
    """How often the image shows what the report asserts (see report/consistency.py)."""
    if c is None or not c.rows:
        return []
    s = c.summary()
    pct = lambda x: "n/a" if x != x else f"{100 * x:.1f}%"  # noqa: E731 - nan-safe percentage
    rows = [["asserted abnormal entities (present or hedged)", s["asserted_abnormal_entities"]],
            ["... with a non-empty mask named after their concept", pct(s["with_mask"])],
            [f"masks differing from a {4}-pixel ring by its std or {GREY_FLOOR:.0f} grey levels", pct(s["masks_visible"])],
            ["sided masks on the stated side (bilateral: both)", pct(s["sided_correct"])],
            ["sampled sides the concept does not allow", s["implausible_sides_sampled"]],
            ["reports whose extracted entities contradict each other (ontology conflicts)", s["contradictory_reports"]]]
    missing = [[name, n, pct(share)] for name, n, share in c.per_concept() if share < 1.0]
    return [
        "## Image–report consistency",
        "",
        f"Measured on the first {c.rows} accepted pairs. Masks are 1-bit PNGs in the `masks` column, one "
        "per drawn concept, named after the ontology concept and aligned with the image. Images are "
        "frontal PA views: the **patient's left is the image right**. A concept the renderer cannot show "
        "on a frontal film has no mask (listed below when asserted).",
        "",
        table(["measure", "value"], rows),
        "",
        "Concepts asserted without a mask in some rows:" if missing else "Every asserted concept has a mask.",
        "",
        *([table(["concept", "asserted", "with a mask"], missing), ""] if missing else []),
    ]


def _causes_section(st: CardStats) -> list[str]:
    """Per cause: rewrites (failed verification, then a new report), redraws (failed QC, then a
    new image) of the accepted pairs, and samples rejected for it after their last attempt."""
    rewrites = sum(v for k, v in st.retry_reasons.items() if k.startswith("write:"))
    redraws = sum(v for k, v in st.retry_reasons.items() if k.startswith("image:"))
    rejected = sum(st.reject_reasons.values())
    causes = sorted(set(st.retry_reasons) | set(st.reject_reasons),
                    key=lambda k: -(st.retry_reasons.get(k, 0) + st.reject_reasons.get(k, 0)))
    head = [f"Rewrites: **{rewrites}**; redraws: **{redraws}** (retries before acceptance); rejected: "
            f"**{rejected}** (kept in `rejects/`). Per cause (`stage: reason`; write = report verification, "
            "image = QC):", ""]
    kept = []
    if st.unverified:
        kept.append(f"Kept although verification failed (verify.enabled: false): **{st.unverified}** reports "
                    "whose text does not state exactly their sampled entities.")
    if st.faults_kept:
        kinds = ", ".join(f"{k} {n}" for k, n in st.faults_kept.most_common())
        kept.append(f"Accepted films with a simulated acquisition fault (image.defect_rate; QC missed them or "
                    f"was off): **{sum(st.faults_kept.values())}** ({kinds}).")
    head += [*kept, ""] if kept else []
    if not causes:
        return head + ["_none_", ""]
    rows = [[k, st.retry_reasons.get(k, 0) if k.startswith("write:") else 0,
             st.retry_reasons.get(k, 0) if not k.startswith("write:") else 0,
             st.reject_reasons.get(k, 0), st.reject_examples.get(k, "").replace("|", "/")] for k in causes]
    return head + [table(["cause", "rewrites", "redraws", "rejected", "example detail (rejects)"], rows), ""]


def _balance_sentence(plan: dict, source: str = "", accepted: dict | None = None) -> str:
    """Balance of the accepted pairs' entities (else the plan's) against the reference corpus."""
    ref, got = plan.get("reference_counts"), accepted or plan.get("sampled_counts") or {}
    vals = [v for v in got.values() if v > 0]
    s = ""
    if vals:
        s = (f"After balancing ({'accepted pairs' if accepted else 'plan'}): {len(vals)} entities used, "
             f"max/min usage ratio {max(vals) / min(vals):.1f}.")
    if ref:
        rv = [v for v in ref.values() if v > 0]
        s += f" Reference corpus: {len(rv)} entities, max/min frequency ratio {max(rv) / min(rv):.1f}."
    else:
        s += " (Pool from the ontology: no reference corpus, so there is no 'before' distribution.)"
    if source == "sim":
        s += (" The reference corpus is **simulated** (syncxr.sim: a MIMIC-CXR-shaped long tail written by the "
              "built-in writer), not real reports.")
    return s
