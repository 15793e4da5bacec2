"""The dataset card's realism section: the figures benchmarks/realism.py leaves in a dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

from syncxr.report.markdown import table


REALISM_FILE = "realism.json"
REALISM_COMMAND = ("python benchmarks/realism.py --real <folder of real frontal CXR PNGs> --n 48 "
                   "--json <dataset>/realism.json")


def read_realism(folder: Path) -> dict | None:
    """The realism figures benchmarks/realism.py left in the dataset folder, if any (too slow and
    needing real films, so not computed at every generate). A broken file is named, not fatal."""
    path = folder / REALISM_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        float(data["discriminator_auc"])
        return data
    except (ValueError, KeyError, TypeError) as e:
        return {"error": f"{path.name} unreadable ({type(e).__name__}: {e}); re-run: {REALISM_COMMAND}"}


def realism_section(r: dict | None) -> list[str]:
    """How far the images are from real films: a discriminator on image statistics (lower AUC =
    closer), or how to measure it when no realism.json is present."""
    head = ["## Realism against real films", ""]
    if not r:
        return head + [f"Not measured for this dataset. `{REALISM_COMMAND}` trains a discriminator on image "
                       "statistics (grain, gradients, symmetry, histogram) to tell renders from real films and "
                       f"writes `{REALISM_FILE}` here and re-writes this card with the figure (or run `syncxr card <dataset>`).", ""]
    if "error" in r:
        return head + [r["error"], ""]
    stats = r.get("statistics") or {}
    rows = [["discriminator ROC AUC (0.5 = indistinguishable, 1.0 = always told apart)", f"{float(r['discriminator_auc']):.2f}"],
            ["discriminator accuracy (leave-one-out)", f"{float(r.get('discriminator_accuracy', float('nan'))):.2f}"],
            ["real films / renders compared", f"{r.get('real_images', '?')} / {r.get('renders', '?')}"],
            ["renderer", r.get("renderer", "?")]]
    rows += [[f"median {k.replace('|', '')}: real / render", f"{v['real']:.2f} / {v['phantom']:.2f}"] for k, v in stats.items()]
    return head + [
        "Measured by `benchmarks/realism.py` on fresh renders of this renderer version (not on this "
        "dataset's own images) against a folder of real frontal films; a logistic regression on simple "
        "image statistics, so a low AUC does not prove the films look real to a radiologist. "
        f"Command: `{r.get('command', REALISM_COMMAND)}`.",
        "",
        table(["measure", "value"], rows),
        "",
    ]
