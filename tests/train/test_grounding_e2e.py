"""ConVIRT trained briefly on the simulated benchmark's training split, then grounded on the test
split (pointing game vs. a uniformly random point, bootstrap CI over images) in the global space
it trained; its untrained local head is refused.

What this budget supports (measured, phantom-v6, 400 images at 128 px, 15 epochs): a mean gain of
0.011, 95% CI [-0.040, 0.065] over 88 regions, i.e. chance level; 40 epochs give the same mean
(per finding it moves: cardiomegaly +0.10 at 15 epochs, -0.05 at 40). A global-space map of a tiny
ConVIRT does not localise findings here, so the test guards the pipeline end to end (space, one
row per annotated region, gains within [-1, 1]) and that the mean is not below chance; it no longer
claims localisation (docs/zeroshot-below-chance.md has the attention analysis).
"""

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from syncxr.data.sources.registry import load_dataset  # noqa: E402
from syncxr.errors import UserError  # noqa: E402
from syncxr.evaluate.grounding import GroundingOptions, run_grounding  # noqa: E402
from syncxr.evaluate.metrics import mean_ci  # noqa: E402
from syncxr.models.pretrained import load_pretrained  # noqa: E402
from syncxr.sim.benchmark import write_sim_benchmark  # noqa: E402
from syncxr.train.api import train  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: `pytest -m 'not slow'` skips it for a fast loop

QUICK = Path(__file__).parents[2] / "configs" / "train" / "quick.yaml"


def _report(row: pd.Series, findings: list[str]) -> str:
    positives = [f.replace("_", " ") for f in findings if row[f] == "1"]
    return ". ".join(positives) + "." if positives else "no acute cardiopulmonary abnormality."


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ground")
    bench = write_sim_benchmark(root / "bench", n=400, size=128, seed=0, fmt="csv")
    labels = pd.read_csv(bench / "labels.csv", dtype=str)
    findings = [c for c in labels.columns if c not in ("image", "view", "patient_id", "split")]
    train_rows = labels[labels["split"] == "train"]
    pairs = pd.DataFrame({"image": train_rows["image"], "text": [_report(r, findings) for _, r in train_rows.iterrows()]})
    pairs.to_csv(bench / "pairs.csv", index=False)
    train(QUICK, f"csv:{bench / 'pairs.csv'}", root / "run",
          ["train.progress=false", "train.epochs=15", "model.image.image_size=128", "train.eval_each_epoch=false"])
    ds = load_dataset("sim", bench)
    test = ds.subset(np.flatnonzero(ds.meta["split"].to_numpy() == "test"))  # images never trained on
    return load_pretrained(root / "run"), test


def test_convirt_grounding_runs_end_to_end_not_below_chance_in_the_global_space(trained):
    pre, test = trained
    assert pre.local_head_trained is False
    out = run_grounding(pre, test, GroundingOptions(n_boot=200))
    assert out.result["space"] == "global"
    gain = out.predictions["pointing_game_gain"].to_numpy()  # per (image, finding): hit share - region share
    mean, (lo, hi) = mean_ci(gain, 1000, 0)
    # phantom-v2 grounded above chance (CI excluded 0); since the realism passes (v3: 0.043
    # [-0.013, 0.109]; v6: 0.011 [-0.040, 0.065]) it is chance level.
    assert len(gain) > 50 and mean >= 0.0 and hi > 0.0, (mean, lo, hi)
    assert ((gain >= -1.0) & (gain <= 1.0)).all()
    assert out.result["mean_pointing_game"] > out.result["mean_pointing_game_chance"]


def test_convirt_local_head_is_refused(trained):
    pre, test = trained
    with pytest.raises(UserError, match="objective 'convirt', which has no local term"):
        run_grounding(pre, test, GroundingOptions(space="local", n_boot=0))
