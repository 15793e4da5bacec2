"""The `syncxr` command line: thin. Parse, call one library function, map UserError to exit 2."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from syncxr.cli_audit import build_audit_app
from syncxr.errors import UserError
from syncxr.pipeline.executor import EXECUTORS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, help="Synthetic CXR datasets and MedVLP study.")
qc_app = typer.Typer(no_args_is_help=True, help="Image QC: problem banks and filter measurement.")
app.add_typer(qc_app, name="qc")
sim_app = typer.Typer(no_args_is_help=True, help="The simulated clinical world: corpora and benchmarks.")
app.add_typer(sim_app, name="sim")
err_console = Console(stderr=True, soft_wrap=True)  # never break paths in messages
console = Console()

SetOpt = typer.Option(None, "--set", help="Override a config key: --set image.size=512 (repeatable)")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    raise typer.Exit(2) from None


def user_errors(fn: Callable) -> Callable:
    """Turn a UserError into one clear message and exit code 2 (no traceback). A filesystem error
    that no library code translated (read-only folder, disk full) is reported the same way, with
    the path and the cause."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            _fail(str(e))
        except OSError as e:
            from syncxr.fsio import fs_error, is_filesystem_error

            if not is_filesystem_error(e):
                raise  # e.g. a refused connection: not the user's files, keep the traceback
            _fail(str(fs_error(e, e.filename or "(unknown path)", "complete the operation")))

    return wrapper


app.add_typer(build_audit_app(user_errors), name="audit")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
@user_errors
def generate(
    config: Path = typer.Option(..., "--config", "-c", help="Generation YAML, e.g. configs/generate/quick.yaml"),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (created; rerun the same command to resume)"),
    n: Optional[int] = typer.Option(None, "--n", help="Number of samples (overrides `n` in the config)"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes of the local executor (default: one per GPU, else per core)"),
    executor: str = typer.Option("local", "--executor", help=f"Where shards run: {' | '.join(EXECUTORS.names())} (local: this machine; ray: a Ray cluster)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)"),
    overrides: Optional[List[str]] = SetOpt,
    no_card: bool = typer.Option(False, "--no-card", help="Skip writing card.md / card.html"),
) -> None:
    """Generate a SynCXR-style image-report dataset of --n accepted pairs (resumable)."""
    from syncxr.config import load_config
    from syncxr.pipeline.config import GenerateConfig
    from syncxr.pipeline.runner import RunFailed, run_generate
    from syncxr.progress import progress_bar

    sets = list(overrides or []) + ([f"n={n}"] if n is not None else [])
    cfg = load_config(GenerateConfig, config, sets)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    try:
        with progress_bar("generating (accepted pairs)", total=cfg.n) as update:
            manifest = run_generate(cfg, out, workers=workers, on_progress=update, executor=executor, ray_address=ray_address)
    except RunFailed as e:
        err_console.print(f"[bold red]run failed:[/] {escape(str(e))}", highlight=False, markup=True)
        raise typer.Exit(1) from None
    if not no_card:
        from syncxr.report.card import write_card

        write_card(out)
    c = manifest["counts"]
    tp = manifest["throughput_last_run"]
    if manifest.get("status") == "short":
        err_console.print(f"[yellow]warning:[/] {c['accepted']} accepted pairs of the {c['requested']} asked for; "
                          "read the reject reasons in the card", highlight=False)
    console.print(
        f"[green]done[/]: {c['accepted']} accepted, {c['rejected']} rejected -> {out} "
        f"({tp['pairs_per_second'] or '-'} pairs/s this run)"
    )


@app.command()
@user_errors
def doctor(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A generation YAML to check"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to check (default: RAY_ADDRESS)"),
) -> None:
    """List every backend and executor, the devices, the Ray cluster, and whether a config can run."""
    from rich.table import Table

    from syncxr.doctor import FAIL, OK, diagnose

    report = diagnose(config, ray_address)
    table = Table("area", "item", "status", "detail", show_lines=False)
    colour = {OK: "green", FAIL: "red"}
    for c in report.checks:
        table.add_row(c.area, c.item, f"[{colour.get(c.status, 'yellow')}]{c.status}[/]", escape(c.detail))
    console.print(table)
    failure = report.first_failure
    if failure is not None:
        raise UserError(f"fix first: {failure.area} {failure.item}: {failure.detail}")
    if config is not None:
        console.print(f"[green]ok[/]: {config} can run here")


@app.command()
@user_errors
def verify(folder: Path = typer.Argument(..., help="A syncxr dataset folder")) -> None:
    """Check a dataset against its manifest: hashes, row counts, sample ids, missing or extra shards."""
    from syncxr.data.integrity import verify_dataset

    problems = verify_dataset(folder)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise UserError(f"{folder}: {len(problems)} problem(s)\n  {shown}\nRerun the generate command to repair "
                        "(damaged shards are regenerated), or regenerate into a new folder.")
    console.print(f"[green]ok[/]: {folder} matches its manifest")


@app.command()
@user_errors
def extract(
    in_path: Path = typer.Option(..., "--in", help="CSV of reports"),
    text_columns: str = typer.Option("findings,impression", "--text-columns", help="Comma-separated text columns"),
    id_column: str = typer.Option(..., "--id-column", help="Column that identifies a report"),
    out: Path = typer.Option(..., "--out", help="Output labels CSV"),
    labels: str = typer.Option(
        "chexpert14", "--labels", help="Label columns: chexpert14, or chexpert14+ (adds emphysema, fibrosis, "
        "nodule, mass, hernia, calcified_granuloma)"
    ),
    strict: bool = typer.Option(False, "--strict", help="Refuse duplicate or empty ids instead of warning"),
) -> None:
    """Extract typed entities and CheXpert-14 labels from a CSV of reports."""
    from syncxr.text.extract_csv import extract_csv

    cols = [c.strip() for c in text_columns.split(",") if c.strip()]
    if not cols:
        raise UserError("--text-columns is empty; give e.g. findings,impression")
    stats = extract_csv(in_path, cols, id_column, out, labels=labels, strict=strict)
    for key, what in (("duplicate_ids", "a duplicate"), ("empty_ids", "an empty")):
        if stats[key]:
            err_console.print(f"[yellow]warning:[/] {len(stats[key])} row(s) with {what} {escape(id_column)!r} "
                              f"(rows {stats[key][:5]}); pass --strict to refuse them", highlight=False)
    failed = f", {len(stats['failed'])} failed (see log)" if stats["failed"] else ""
    console.print(
        f"[green]done[/]: {stats['rows']} reports ({stats['empty_rows']} empty{failed}), "
        f"{stats['entities']} entities, {stats['rows_per_s']} reports/s -> {out}"
    )


@qc_app.command("build-bank")
@user_errors
def qc_build_bank(
    out: Path = typer.Option(..., "--out", help="Bank file (.npz)"),
    per_defect: int = typer.Option(24, "--per-defect", help="Phantom images per known defect"),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of problematic images instead"),
    size: int = typer.Option(256, "--size"),
    seed: int = typer.Option(0, "--seed"),
    features: str = typer.Option("builtin", "--features", help="Feature backend: builtin | rad-dino"),
    model: Optional[str] = typer.Option(None, "--model", help="Weights for rad-dino: a local folder or hub name"),
    device: str = typer.Option("cpu", "--device", help="Device for rad-dino (cpu, cuda)"),
) -> None:
    """Build a bank of problematic images (phantom defects, or your own flagged images).

    The bank is written to --out when it ends in .npz, to --out/bank.npz when --out is a folder,
    else to --out with .npz appended; its .json sidecar sits beside it."""
    from syncxr.qc.bank import bank_from_images, bank_path, build_bank
    from syncxr.qc.base import FEATURES

    if features != "builtin" and model is None:
        raise UserError(f"--features {features} needs --model (a local folder or hub name of the weights)")
    if images is None and (per_defect < 1 or not 128 <= size <= 1024):
        raise UserError(f"--per-defect must be >= 1 and --size in [128, 1024]; got {per_defect} and {size}")
    if images is not None and not images.is_dir():
        raise UserError(f"--images {images}: not a folder; give the folder of flagged images")
    target = bank_path(out)
    feats = FEATURES.create(features, {"model": model, "device": device} if model else {})
    if images is not None:
        paths = sorted(p for p in images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
        if not paths:
            raise UserError(f"{images}: no .png/.jpg images found")
        bank = bank_from_images(paths, feats)
    else:
        bank = build_bank(n_per_defect=per_defect, size=size, seed=seed, feature_backend=feats)
    written = bank.save(target)
    skipped = f" ({sum(bank.skipped.values())} skipped: {bank.skipped})" if bank.skipped else ""
    console.print(f"[green]done[/]: bank of {len(bank.labels)} images{skipped} -> {written}")


@qc_app.command("judge")
@user_errors
def qc_judge(
    images: Path = typer.Option(..., "--images", help="Folder of real radiographs (.png/.jpg)"),
    out: Path = typer.Option(..., "--out", help="Folder for the flagged images and judgements.csv"),
    base_url: str = typer.Option(..., "--base-url", help="OpenAI-compatible vision chat server, e.g. http://127.0.0.1:8000/v1"),
    model: str = typer.Option(..., "--model", help="Multimodal model name on that server (e.g. an InternVL checkpoint)"),
) -> None:
    """Ask a multimodal LLM which real images are problematic (the paper's first QC step); the
    flagged ones are copied to --out for `syncxr qc build-bank --images`."""
    import shutil

    from syncxr.data.shards import write_csv_atomic
    from syncxr.qc.judge import MLLMJudge, problem_bank

    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}) if images.is_dir() else []
    if not paths:
        raise UserError(f"{images}: no .png/.jpg images found")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder for the flagged images and judgements.csv")
    judgements = MLLMJudge(base_url, model).judge_images(paths)
    flagged = problem_bank(judgements)
    from syncxr.fsio import ensure_dir, fs_error

    ensure_dir(out)
    for p in flagged:
        try:
            shutil.copy2(p, out / Path(p).name)
        except OSError as e:
            raise fs_error(e, out / Path(p).name, "copy a flagged image") from None
    write_csv_atomic(out / "judgements.csv", ["path", "problematic", "reason", "error"],
                     [[j.path, j.problematic, j.reason, j.error] for j in judgements])
    errors = sum(1 for j in judgements if j.problematic is None)
    console.print(f"[green]done[/]: {len(flagged)} of {len(paths)} flagged ({errors} not judged) -> {out}")


@qc_app.command("evaluate")
@user_errors
def qc_evaluate(
    bank: Optional[Path] = typer.Option(None, "--bank", help="Bank file; default: build the built-in one"),
    n: int = typer.Option(40, "--n", help="Clean images and images per defect to test"),
    size: int = typer.Option(256, "--size"),
    seed: int = typer.Option(1, "--seed", help="Seed of the test images (use one unlike the bank's)"),
    threshold: Optional[float] = typer.Option(None, "--threshold"),
) -> None:
    """Measure the QC filter's precision/recall on known phantom defects."""
    from syncxr.qc.bank import ProblemBank, build_bank
    from syncxr.qc.base import FEATURES
    from syncxr.qc.filter import BankFilter, evaluate_filter

    if n < 1 or not 128 <= size <= 1024:
        raise UserError(f"--n must be >= 1 and --size in [128, 1024]; got n={n}, size={size}")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise UserError(f"--threshold is a cosine similarity in [-1, 1]; got {threshold}")
    feats = FEATURES.build("builtin")
    pb = ProblemBank.load(bank) if bank else build_bank(n_per_defect=24, size=size, seed=0, feature_backend=feats)
    kwargs = {"threshold": threshold} if threshold is not None else {}
    report = evaluate_filter(BankFilter(pb, feats, **kwargs), n=n, size=size, seed=seed)
    console.print_json(data=report)


@app.command()
@user_errors
def card(dataset: Path = typer.Argument(..., help="Dataset folder")) -> None:
    """(Re)write card.md and card.html for a dataset folder."""
    from syncxr.report.card import write_card

    paths = write_card(dataset)
    console.print(f"[green]done[/]: {', '.join(str(p) for p in paths)}")


@app.command()
@user_errors
def export(
    dataset: Path = typer.Argument(..., help="syncxr dataset folder"),
    out: Path = typer.Option(..., "--out", help="Output folder"),
    fmt: str = typer.Option("webdataset", "--format", help="webdataset | mimic"),
    samples_per_tar: int = typer.Option(1000, "--samples-per-tar"),
    text: str = typer.Option("report", "--text", help="webdataset text: report | findings | impression"),
) -> None:
    """Export a dataset as WebDataset tars or a MIMIC-CXR-JPG-like folder."""
    from syncxr.data.export import export_mimic, export_webdataset

    if fmt == "webdataset":
        if text not in ("report", "findings", "impression"):
            raise UserError(f"--text must be report, findings or impression; got {text!r}")
        paths = export_webdataset(dataset, out, samples_per_tar, text)  # type: ignore[arg-type]
        console.print(f"[green]done[/]: {len(paths)} tar files -> {out}")
    elif fmt == "mimic":
        console.print(f"[green]done[/]: {export_mimic(dataset, out)}")
    else:
        raise UserError(f"--format must be webdataset or mimic; got {fmt!r}")


@sim_app.command("reports")
@user_errors
def sim_reports(
    out: Path = typer.Option(..., "--out", help="CSV to write (uid, findings, impression)"),
    n: int = typer.Option(5000, "--n"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A long-tailed, dictation-like CSV of simulated reports (a stand-in reference corpus)."""
    from syncxr.sim.corpus import write_reports_csv

    if n < 1:
        raise UserError(f"--n must be >= 1 (reports to write); got {n}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the path of the CSV to write, e.g. {out / 'reports.csv'}")
    console.print(f"[green]done[/]: {write_reports_csv(out, n, seed)}")


@sim_app.command("mimic")
@user_errors
def sim_mimic(
    out: Path = typer.Option(..., "--out", help="Folder in the MIMIC-CXR-JPG layout"),
    n: int = typer.Option(500, "--n", help="Studies (one frontal image each)"),
    size: int = typer.Option(256, "--size"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A MIMIC-CXR-JPG-shaped 'real' corpus from the simulated world (images, reports, CSVs)."""
    from syncxr.sim.corpus import write_mimic

    if n < 1 or not 128 <= size <= 1024:
        raise UserError(f"--n must be >= 1 and --size in [128, 1024]; got n={n}, size={size}")
    console.print(f"[green]done[/]: {write_mimic(out, n, seed, size)}")


@sim_app.command("benchmark")
@user_errors
def sim_benchmark(
    out: Path = typer.Option(..., "--out", help="Benchmark folder"),
    n: int = typer.Option(400, "--n", help="Images"),
    size: int = typer.Option(256, "--size"),
    seed: int = typer.Option(0, "--seed"),
    fmt: str = typer.Option("csv", "--format", help="csv | chexpert | rsna | siim"),
) -> None:
    """A labelled benchmark with masks from the simulated world, in an official file format."""
    from syncxr.fsio import missing_dirs, remove_empty_dirs
    from syncxr.sim.benchmark import write_sim_benchmark

    if n < 1 or not 128 <= size <= 1024:
        raise UserError(f"--n must be >= 1 and --size in [128, 1024]; got n={n}, size={size}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder for the benchmark")
    created = missing_dirs(out)
    try:
        write_sim_benchmark(out, n=n, size=size, seed=seed, fmt=fmt)
    except BaseException:
        remove_empty_dirs(created)  # no empty --out folder is left on invalid input
        raise
    console.print(f"[green]done[/]: {out}")


def _register_optional_commands() -> None:
    """Training and evaluation commands live with their packages (they need torch)."""
    from syncxr.cli_ml import register

    register(app, user_errors, console)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _register_optional_commands()
    app(prog_name="syncxr")


if __name__ == "__main__":  # pragma: no cover
    main()
