"""`syncxr train` and `syncxr evaluate`: registered on the main app, importing torch lazily."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console

from syncxr.data.sources.registry import dataset_names
from syncxr.errors import UserError
from syncxr.evaluate.tasks import TASKS
from syncxr.objectives.registry import OBJECTIVES


def require_torch(what: str) -> None:
    """A clear message (exit 2) instead of an ImportError when the train extra is missing."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        from syncxr.fsio import missing_dependency

        raise missing_dependency(what, e, "train") from None


def register(app: typer.Typer, user_errors: Callable, console: Console) -> None:
    @app.command(help=f"Pretrain a MedVLP model (objective.name: {' | '.join(OBJECTIVES.names())}); torchrun-aware.")
    @user_errors
    def train(
        config: Path = typer.Option(..., "--config", "-c", help="Training YAML, e.g. configs/train/quick.yaml"),
        data: Optional[str] = typer.Option(None, "--data", help="syncxr dataset folder, mimic:<dir> or csv:<file>"),
        out: Path = typer.Option(..., "--out", "-o", help="Checkpoint folder"),
        overrides: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key (repeatable)"),
        resume: Optional[str] = typer.Option(None, "--resume", help="'latest' or a checkpoint folder"),
        outside_root: bool = typer.Option(False, "--allow-outside-root",
                                          help="Let mimic/csv sources read image paths outside their root folder"),
    ) -> None:
        require_torch("syncxr train")
        from syncxr.train.api import train as run_train

        path = run_train(config, data, out, list(overrides or []), resume, outside_root=outside_root)
        if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
            console.print(f"[green]done[/]: checkpoint -> {path}")

    @app.command()
    @user_errors
    def study(
        config: Path = typer.Option(..., "--config", "-c", help="Study YAML, e.g. configs/study/quick.yaml"),
        out: Path = typer.Option(..., "--out", "-o", help="Study folder (rerun the same command to resume)"),
        overrides: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key (repeatable)"),
    ) -> None:
        """Reproduce the study: pretrain on real, synthetic and mixed data, evaluate, report."""
        require_torch("syncxr study")
        from syncxr.study.run import run_study

        run_study(str(config), str(out), list(overrides or []))
        console.print(f"[green]done[/]: report -> {out / 'study.html'}")

    eval_app = typer.Typer(help="Evaluate a checkpoint: zero-shot, grounding, fine-tune, segmentation.")
    app.add_typer(eval_app, name="evaluate")

    @eval_app.callback(invoke_without_command=True)
    @user_errors
    def evaluate_suite(
        ctx: typer.Context,
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="Suite YAML, e.g. configs/evaluate/paper.yaml"),
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint"),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder for the suite"),
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        if config is None or checkpoint is None:
            raise UserError(f"give a task ({'|'.join(TASKS.names())}) or --config SUITE.yaml --checkpoint CKPT")
        require_torch("syncxr evaluate")
        from syncxr.evaluate.suite import run_suite

        out_dir = out or (checkpoint / "eval")
        run_suite(str(config), str(checkpoint), str(out_dir))
        console.print(f"[green]done[/]: results -> {out_dir}")

    def _task_command(task: str) -> None:
        @eval_app.command(task)
        @user_errors
        def _run(
            checkpoint: Path = typer.Option(..., "--checkpoint"),
            dataset: str = typer.Option(..., "--dataset", help="|".join(dataset_names())),
            data_dir: Path = typer.Option(..., "--data-dir"),
            out: Path = typer.Option(..., "--out", help="Results file (*.json) or a folder for results.json + predictions.csv"),
            csv: Optional[Path] = typer.Option(None, "--csv", help="Labels CSV for --dataset csv"),
            predictions: Optional[Path] = typer.Option(None, "--predictions", help="Per-image scores CSV"),
            overrides: Optional[List[str]] = typer.Option(None, "--set", help="Task option key=value (repeatable)"),
        ) -> None:
            require_torch(f"syncxr evaluate {task}")
            from syncxr.config import parse_override
            from syncxr.evaluate.suite import run_task

            options: dict = {}
            ds_options: dict = {}
            for item in overrides or []:
                keys, value = parse_override(item)
                if keys[0] == "dataset_options" and len(keys) == 2:
                    ds_options[keys[1]] = value
                else:
                    options[".".join(keys)] = value
            if csv is not None:
                ds_options["csv"] = str(csv)
            if ds_options:
                options["dataset_options"] = ds_options
            from syncxr.evaluate.results import print_table

            result = run_task(task, str(checkpoint), dataset, str(data_dir), str(out),
                              predictions=str(predictions) if predictions else None, **options)
            print_table(result)
            console.print(f"[green]done[/]: {task} -> {out}")

        _run.__doc__ = f"Run the {task} task on one dataset."

    for task in TASKS.names():
        _task_command(task)
