"""End-to-end CPU training on fixture shards: retrieval is learned, the checkpoint loads through
the evaluation contract, bad configs/data fail with UserError, NaN stops cleanly."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from fixture_shards import make_pair, write_shards  # noqa: E402

from syncxr.data.pairs import decode_image  # noqa: E402
from syncxr.errors import UserError  # noqa: E402
from syncxr.models.pretrained import load_pretrained  # noqa: E402
from syncxr.train.api import train  # noqa: E402
from syncxr.train.metrics import chance_recall, read_metrics, retrieval_recall  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: `pytest -m 'not slow'` skips it for a fast loop

QUICK = Path(__file__).parents[2] / "configs" / "train" / "quick.yaml"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("ds"), 300, seed=1)


@pytest.fixture(scope="module")
def run_dir(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(QUICK, str(dataset), out, ["train.progress=false", "train.epochs=4"])  # 4 x 8 = 32 steps
    return out


def test_recall_rises_above_chance(run_dir):
    rows = read_metrics(run_dir / "metrics.csv")
    val = [r for r in rows if r["phase"] == "val"]
    train_rows = [r for r in rows if r["phase"] == "train"]
    assert len(val) == 4 and int(train_rows[-1]["step"]) == 32
    assert float(train_rows[-1]["loss"]) < float(train_rows[0]["loss"])
    # 8 distinct reports, 30 val pairs: random ranking gives recall@1 ~ 0.15.
    assert float(val[-1]["i2t_r1"]) > 0.4
    assert float(val[-1]["t2i_r5"]) > 0.6


def test_checkpoint_folder_and_contract(run_dir):
    assert {"config.yaml", "metrics.csv", "latest.json"} <= {p.name for p in run_dir.iterdir()}
    pre = load_pretrained(run_dir)
    from syncxr.data.shards import sha256_file

    # the id names the weights: the sha256 of one of this run's model files
    assert pre.checkpoint_id in {sha256_file(f)[:16] for f in run_dir.rglob("*.safetensors")}
    assert pre.preprocess.image_size == 64 and pre.has_local_features
    assert pre.config["objective"]["name"] == "convirt"
    rng = np.random.default_rng(5)
    imgs = [decode_image(make_pair(rng, 80)[0]) for _ in range(3)]
    x = torch.stack([pre.preprocess(im) for im in imgs])
    assert x.shape == (3, 1, 64, 64) and abs(float(x.mean())) < 5
    with torch.no_grad():
        io = pre.model.encode_image(x)
        to = pre.model.encode_text(**pre.tokenize(["small bright opacity left upper zone", "x"]))
    assert io.global_emb.shape == (3, 128) and io.local.shape[0] == 3 and io.grid == (4, 4)
    assert to.global_emb.shape == (2, 128) and to.mask.dtype == torch.bool
    # a checkpoint folder and its model.safetensors resolve to the same weights
    ckpt = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    assert load_pretrained(ckpt / "model.safetensors").checkpoint_id == pre.checkpoint_id


def test_preprocess_roundtrip_and_shape():
    from syncxr.models.pretrained import Preprocess

    p = Preprocess(32, 0.5, 0.25)
    assert Preprocess.from_dict(p.to_dict()) == p
    img = np.full((40, 80), 255, np.uint8)  # non-square: shorter side -> 32, center crop
    out = p(img)
    assert out.shape == (1, 32, 32) and torch.allclose(out, torch.full_like(out, 2.0))


def test_out_with_checkpoints_needs_resume(run_dir, dataset):
    with pytest.raises(UserError, match="--resume latest"):
        train(QUICK, str(dataset), run_dir, ["train.progress=false"])


def test_nan_guard_stops_and_keeps_last_checkpoint(dataset, tmp_path, monkeypatch):
    from syncxr.objectives.convirt import ConVIRT
    from syncxr.train.loop import TrainingDiverged

    calls = {"n": 0}
    real = ConVIRT.forward

    def flaky(self, img, txt):
        calls["n"] += 1
        loss, logs = real(self, img, txt)
        return (loss * float("nan") if calls["n"] > 3 else loss), logs

    monkeypatch.setattr(ConVIRT, "forward", flaky)
    with pytest.raises(TrainingDiverged, match="diverged at step 4.*step-00000003"):
        train(QUICK, str(dataset), tmp_path, ["train.progress=false", "train.ckpt_every=1"])
    assert load_pretrained(tmp_path).config["train"]["ckpt_every"] == 1
    assert (tmp_path / "checkpoints" / "step-00000003").is_dir()


def test_recall_metric_values():
    emb = torch.eye(4)
    perfect = retrieval_recall(emb, emb, ["a", "b", "c", "d"])
    assert perfect["i2t_r1"] == 1.0 and perfect["t2i_r1"] == 1.0
    swapped = retrieval_recall(emb, emb[[1, 0, 2, 3]], ["a", "b", "c", "d"])
    assert swapped["i2t_r1"] == 0.5
    # identical texts count as hits for each other
    same = retrieval_recall(emb, emb[[1, 0, 2, 3]], ["a", "a", "c", "d"])
    assert same["i2t_r1"] == 1.0
    assert chance_recall(["a", "b"], 1) == 0.5 and chance_recall(["a", "a"], 1) == 1.0


@pytest.mark.parametrize(
    "override, key",
    [("model.image.colour=3", "model.image.colour"), ("train.epochs=zero", "train.epochs"),
     ("train.batch_size=1", "train.batch_size"), ("objective.name=clip", "objective")],
)
def test_bad_config_names_key(override, key, dataset, tmp_path):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        train(QUICK, str(dataset), tmp_path, [override])


def test_bad_set_syntax_and_missing_data(tmp_path):
    with pytest.raises(UserError, match="key.path=value"):
        train(QUICK, None, tmp_path, ["train.epochs"])
    with pytest.raises(UserError, match="no shards"):
        train(QUICK, str(tmp_path), tmp_path / "o", ["train.progress=false"])
    with pytest.raises(UserError, match="no training data"):
        train(QUICK, None, tmp_path / "o2", ["train.progress=false"])
