"""Score the built-in extractor on a labelled dev set of real reports and print the tables.

The dev set is a CSV like ../shared/real-reports-dev/iu_dev.csv: `uid`, `findings`, `impression`,
`gold_<finding>` columns (1/0) and `gold_indexed` (rows with 0 are left out, as score.py does).
Scoring follows that set's score.py: per finding precision / recall / F1 with uncertain (-1) counted
as positive and as negative, and micro-F1 over the 10 findings below (emphysema is printed with the
chexpert14+ columns but left out of the micro average, as the issue scores it).

Cross-validation: reports are split into `--folds` folds by a seeded shuffle of their uids (the
same split on every run). `--hold-out K` names the fold rules must not be tuned on: error listings
(`--errors`) never show its reports. The per-fold table shows every fold's micro-F1 with the
current rules, its mean and standard deviation.

Protocol used for issue 11: rules were changed looking only at folds 0-3 (`--train` tables,
`--errors` listings); fold 4 (seed 0) was scored, never listed.

Usage:
    PYTHONPATH=src python benchmarks/bench_extract_dev.py             # full table, per-fold table, rate
    PYTHONPATH=src python benchmarks/bench_extract_dev.py --train     # tuning folds only
    PYTHONPATH=src python benchmarks/bench_extract_dev.py --fold 4    # one fold's per-finding table
    PYTHONPATH=src python benchmarks/bench_extract_dev.py --errors pneumonia   # FP/FN reports, folds 0-3
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from pathlib import Path

from syncxr.text.lexicon_extractor import LexiconExtractor
from syncxr.text.merge import merge_entities
from syncxr.text.labels import label_vector

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEV = ROOT.parent / "shared" / "real-reports-dev" / "iu_dev.csv"
FINDINGS = ["cardiomegaly", "pleural_effusion", "pneumothorax", "atelectasis", "edema",
            "consolidation", "pneumonia", "lung_opacity", "nodule_mass", "fracture"]
EXTRA = ["emphysema"]
RENAME = {"lung_lesion": "nodule_mass"}


def fold_of(uids: list[str], folds: int, seed: int) -> dict[str, int]:
    """uid -> fold: a seeded shuffle of the sorted uids, dealt round-robin."""
    order = sorted(uids, key=lambda u: (len(u), u))
    random.Random(seed).shuffle(order)
    return {u: i % folds for i, u in enumerate(order)}


def predict(rows: list[dict[str, str]], extractor: LexiconExtractor) -> tuple[dict[str, dict], dict[str, list], float]:
    """uid -> label dict (scorer names), uid -> entities, and CPU seconds spent extracting."""
    labels, ents = {}, {}
    t = time.process_time()
    for r in rows:
        found = []
        for section in ("findings", "impression"):
            found += extractor._extract(r.get(section) or "", section)
        ents[r["uid"]] = merge_entities(found)
    secs = time.process_time() - t
    for uid, e in ents.items():
        vec = label_vector(e, extractor.ontology, "chexpert14+")
        labels[uid] = {RENAME.get(k, k): v for k, v in vec.items()}
    return labels, ents, secs


def counts(gold: list[dict], pred: dict[str, dict], finding: str, unc: int) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for g in gold:
        v = pred[g["uid"]].get(finding)
        p = 1 if v == 1.0 else (unc if v == -1.0 else 0)
        y = int(g["gold_" + finding])
        tp += p and y
        fp += p and not y
        fn += (not p) and y
    return tp, fp, fn


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def micro(gold: list[dict], pred: dict[str, dict], unc: int) -> float:
    t = f = n = 0
    for finding in FINDINGS:
        a, b, c = counts(gold, pred, finding, unc)
        t, f, n = t + a, f + b, n + c
    return 2 * t / (2 * t + f + n) if t else 0.0


def bootstrap_ci(gold: list[dict], pred: dict[str, dict], unc: int, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of micro-F1, resampling reports with replacement."""
    rng = random.Random(seed)
    scores = sorted(micro([rng.choice(gold) for _ in gold], pred, unc) for _ in range(draws))
    return scores[int(0.025 * draws)], scores[int(0.975 * draws) - 1]


def table(gold: list[dict], pred: dict[str, dict]) -> None:
    print(f"{'finding':18} {'P+':>6} {'R+':>6} {'F1+':>6} {'P-':>6} {'R-':>6} {'F1-':>6} {'gold+':>6}")
    for finding in FINDINGS + EXTRA:
        pos = prf(*counts(gold, pred, finding, 1))
        neg = prf(*counts(gold, pred, finding, 0))
        n = sum(int(g["gold_" + finding]) for g in gold)
        star = " (not in micro)" if finding in EXTRA else ""
        print(f"{finding:18} " + " ".join(f"{x:6.3f}" for x in (*pos, *neg)) + f" {n:6d}{star}")
    print(f"micro-F1 over {len(FINDINGS)} findings: uncertain=positive {micro(gold, pred, 1):.3f}  "
          f"uncertain=negative {micro(gold, pred, 0):.3f}")


def show_errors(gold: list[dict], pred: dict, ents: dict, finding: str, folds: dict, hold_out: int) -> None:
    rows = [g for g in gold if folds[g["uid"]] != hold_out]
    for g in rows:
        v = pred[g["uid"]].get(finding)
        y = int(g["gold_" + finding])
        if (v in (1.0, -1.0)) == bool(y) and not (y and v == -1.0):
            continue
        kind = "FN" if y else "FP"
        print(f"--- {kind} uid={g['uid']} pred={v} mesh={g['mesh_major']}")
        print("  F:", g["findings"])
        print("  I:", g["impression"])
        print("  E:", ", ".join(f"{e.name}:{e.assertion}" for e in ents[g["uid"]] if e.type != "ANATOMY"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=Path, default=DEFAULT_DEV)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hold-out", type=int, default=4, help="fold never shown by --errors")
    ap.add_argument("--errors", default="", help="list false positives/negatives of FINDING (other folds only)")
    ap.add_argument("--train", action="store_true", help="score only the folds rules are tuned on")
    ap.add_argument("--fold", type=int, default=None, help="print the per-finding table of one fold only (scores, no reports)")
    args = ap.parse_args()
    with open(args.dev, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    extractor = LexiconExtractor()
    pred, ents, secs = predict(rows, extractor)
    gold = [r for r in rows if r["gold_indexed"] == "1"]
    folds = fold_of([r["uid"] for r in rows], args.folds, args.seed)
    if args.errors:
        show_errors(gold, pred, ents, args.errors, folds, args.hold_out)
        return
    print(f"dev set: {args.dev} ({len(rows)} reports, {len(gold)} coded)\n")
    if args.fold is not None:
        gold = [g for g in gold if folds[g["uid"]] == args.fold]
        print(f"fold {args.fold} only ({len(gold)} coded reports)")
        table(gold, pred)
        return
    if args.train:
        gold = [g for g in gold if folds[g["uid"]] != args.hold_out]
        print(f"tuning folds only ({len(gold)} coded reports; fold {args.hold_out} left out)")
        table(gold, pred)
        return
    table(gold, pred)
    print(f"\nper fold (seed {args.seed}; fold {args.hold_out} held out from rule tuning):")
    scores = {1: [], 0: []}
    for k in range(args.folds):
        part = [g for g in gold if folds[g["uid"]] == k]
        for unc in (1, 0):
            scores[unc].append(micro(part, pred, unc))
        tag = "  (held out)" if k == args.hold_out else ""
        print(f"  fold {k}: n={len(part):4d}  F1 unc=pos {scores[1][-1]:.3f}  unc=neg {scores[0][-1]:.3f}{tag}")
        if k == args.hold_out:
            (lp, hp), (ln, hn) = bootstrap_ci(part, pred, 1), bootstrap_ci(part, pred, 0)
            print(f"          bootstrap 95% CI (2,000 draws): unc=pos [{lp:.3f}, {hp:.3f}]  unc=neg [{ln:.3f}, {hn:.3f}]")
    for unc, name in ((1, "uncertain=positive"), (0, "uncertain=negative")):
        s = scores[unc]
        print(f"  {name}: mean {statistics.mean(s):.3f}  sd {statistics.stdev(s):.3f}  "
              f"min {min(s):.3f}  max {max(s):.3f}")
    sentences = sum(len(e) for e in ents.values())
    print(f"\nrate on the dev reports (findings + impression, 1 core, CPU time): {len(rows) / secs:.0f} reports/s "
          f"({sentences} entities)")


if __name__ == "__main__":
    main()
