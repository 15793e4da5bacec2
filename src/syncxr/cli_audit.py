"""`syncxr audit privacy` and `syncxr audit fidelity`: the dataset audits (syncxr/audit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from syncxr.errors import UserError

console = Console()

SYNTHETIC = typer.Option(..., "--synthetic", help="syncxr dataset folder to audit")
REAL = typer.Option(..., "--real", help="Real corpus: a MIMIC-CXR-JPG root, a syncxr dataset, or a CSV (see --real-kind)")
REAL_KIND = typer.Option("mimic", "--real-kind", help="mimic | syncxr | csv")
FEATURES = typer.Option("builtin", "--features", help="Image features: builtin | rad-dino")
MODEL = typer.Option(None, "--model", help="Weights for rad-dino: a local folder or hub name")
DEVICE = typer.Option("cpu", "--device", help="Device for model features (cpu, cuda)")
SPLIT = typer.Option(None, "--real-split", help="mimic: train | validate | test | all (default all)")
VIEWS = typer.Option(None, "--real-views", help="mimic: comma-separated views (default PA,AP)")
IMAGE_COL = typer.Option(None, "--real-image-col", help="csv: image path column (default image)")
TEXT_COL = typer.Option(None, "--real-text-col", help="csv: report column (default text)")
LABEL_COL = typer.Option(None, "--real-label-col", help="csv: column of '|'-joined finding names (e.g. NIH labels)")


def real_options(kind: str, split: Optional[str], views: Optional[str], image_col: Optional[str],
                 text_col: Optional[str], label_col: Optional[str]) -> dict[str, Any]:
    """The corpus reader options given on the command line; one that does not apply to `kind` is an error."""
    given = {"split": split, "views": views, "image_col": image_col, "text_col": text_col, "label_col": label_col}
    allowed = {"mimic": {"split", "views"}, "csv": {"image_col", "text_col", "label_col"}, "syncxr": set()}.get(kind, set())
    wrong = sorted(k for k, v in given.items() if v is not None and k not in allowed)
    if wrong:
        flags = ", ".join("--real-" + k.replace("_col", "-col").replace("_", "-") for k in wrong)
        raise UserError(f"{flags}: does not apply to --real-kind {kind}")
    opts = {k: v for k, v in given.items() if v is not None}
    if "views" in opts:
        opts["views"] = [v.strip() for v in opts["views"].split(",") if v.strip()]
    return opts


def _check_paths(synthetic: Path, real: Path, kind: str, out: Path) -> None:
    """Name the flag of a missing input (the readers only know the path)."""
    if not synthetic.is_dir():
        raise UserError(f"--synthetic {synthetic}: not a folder; give a syncxr dataset folder (made by `syncxr generate`)")
    if not real.exists():
        raise UserError(f"--real {real}: not found; give the real corpus ({'a CSV file' if kind == 'csv' else 'a folder'})")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder for the audit")


def build_audit_app(user_errors: Callable[[Callable], Callable]) -> typer.Typer:
    """The `audit` sub-app; `user_errors` is the main CLI's UserError -> exit 2 wrapper."""
    audit_app = typer.Typer(no_args_is_help=True,
                            help="Dataset audits: near copies of real data (privacy) and generative fidelity.")

    @audit_app.command("privacy")
    @user_errors
    def privacy(
        synthetic: Path = SYNTHETIC, real: Path = REAL, real_kind: str = REAL_KIND,
        out: Path = typer.Option(..., "--out", help="Folder for privacy.json, closest.csv, histograms and privacy.html"),
        section: str = typer.Option("both", "--section", help="Report text compared: findings | impression | both"),
        measures: str = typer.Option("text_ngram,text_emb,image", "--measures", help="Comma-separated: text_ngram, text_emb, image"),
        ngram: int = typer.Option(3, "--ngram", help="Word n-gram size of text_ngram"),
        ngram_metric: str = typer.Option("jaccard", "--ngram-metric", help="jaccard | containment (share of the synthetic n-grams in the real report)"),
        text_embedder: str = typer.Option("tfidf", "--text-embedder", help="tfidf (built-in) | transformers"),
        text_model: Optional[str] = typer.Option(None, "--text-model", help="Text encoder for --text-embedder transformers (folder or hub name)"),
        features: str = FEATURES, model: Optional[str] = MODEL, device: str = DEVICE,
        drop_above: Optional[float] = typer.Option(None, "--drop-above", help="Near-copy threshold: drop samples scoring at or above it"),
        drop_measure: str = typer.Option("text_ngram", "--drop-measure", help="Measure the threshold applies to"),
        filtered: Optional[Path] = typer.Option(None, "--filtered", help="Write the dataset without the near copies here (needs --drop-above)"),
        top: int = typer.Option(12, "--top", help="Closest pairs shown per measure"),
        baseline: int = typer.Option(500, "--baseline", help="Real rows compared with the rest of the corpus (the reference distribution)"),
        real_split: Optional[str] = SPLIT, real_views: Optional[str] = VIEWS, real_image_col: Optional[str] = IMAGE_COL,
        real_text_col: Optional[str] = TEXT_COL, real_label_col: Optional[str] = LABEL_COL,
    ) -> None:
        """Nearest real report and image of every synthetic sample; optionally drop the near copies."""
        from syncxr.audit.privacy import run_privacy_audit

        _check_paths(synthetic, real, real_kind, out)
        if section not in ("findings", "impression", "both"):
            raise UserError(f"--section must be findings, impression or both; got {section!r}")
        opts = real_options(real_kind, real_split, real_views, real_image_col, real_text_col, real_label_col)
        s = run_privacy_audit(
            synthetic, real, real_kind, out, section=section, real_options=opts,
            measures=[m.strip() for m in measures.split(",") if m.strip()], ngram=ngram, ngram_metric=ngram_metric,
            text_embedder=text_embedder, text_model=text_model, features=features, feature_model=model, device=device,
            drop_above=drop_above, drop_measure=drop_measure, filtered=filtered, top=top, baseline=baseline,
        )
        parts = [f"{m} median {d['synthetic_to_real']['quantiles']['q50']}, max {d['synthetic_to_real']['quantiles']['q100']}, "
                 f"{d['exact_copies']} exact" for m, d in s["measures"].items() if d["synthetic_to_real"].get("n")]
        console.print(f"[green]done[/]: {s['synthetic']['samples']} synthetic vs {s['real']['samples']} real; "
                      + "; ".join(parts) + f" -> {out / 'privacy.html'}")
        if "filter" in s:
            f = s["filter"]
            console.print(f"near copies: {f['dropped']} dropped ({f['measure']} >= {f['threshold']:g}), {f['kept']} kept"
                          + (f" -> {f['filtered']}" if f.get("filtered") else ""))


    @audit_app.command("fidelity")
    @user_errors
    def fidelity(
        synthetic: Path = SYNTHETIC, real: Path = REAL, real_kind: str = REAL_KIND,
        out: Path = typer.Option(..., "--out", help="Folder for fidelity.json, fidelity.md and fidelity.png"),
        features: str = FEATURES, model: Optional[str] = MODEL, device: str = DEVICE,
        k: int = typer.Option(5, "--k", help="Neighbours of the k-NN precision/recall/density/coverage"),
        min_per_finding: int = typer.Option(20, "--min-per-finding", help="Images per side a finding needs to be measured"),
        folds: int = typer.Option(5, "--folds", help="Cross-validation folds of the synthetic-vs-real classifier"),
        max_images: Optional[int] = typer.Option(None, "--max-images", help="Use at most this many images per side (random subset)"),
        real_split: Optional[str] = SPLIT, real_views: Optional[str] = VIEWS, real_image_col: Optional[str] = IMAGE_COL,
        real_text_col: Optional[str] = TEXT_COL, real_label_col: Optional[str] = LABEL_COL,
    ) -> None:
        """Fréchet distance, k-NN precision/recall/density/coverage and a synthetic-vs-real classifier."""
        from syncxr.audit.fidelity import run_fidelity_audit

        _check_paths(synthetic, real, real_kind, out)
        if max_images is not None and max_images < 2:
            raise UserError(f"--max-images must be >= 2; got {max_images}")
        opts = real_options(real_kind, real_split, real_views, real_image_col, real_text_col, real_label_col)
        r = run_fidelity_audit(synthetic, real, real_kind, out, real_options=opts, features=features, feature_model=model,
                               device=device, k=k, min_per_finding=min_per_finding, folds=folds, max_images=max_images)
        o = r["overall"]
        console.print(f"[green]done[/]: FD {o['fd']:.4g}, precision {o['precision']}, recall {o['recall']}, density "
                      f"{o['density']}, coverage {o['coverage']}, classifier AUC {o['classifier']['auc']}; "
                      f"{len(r['per_finding'])} finding(s) measured, {len(r['skipped_findings'])} skipped -> {out / 'fidelity.md'}")

    return audit_app
