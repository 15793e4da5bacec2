"""The loop's before-optimizer-step hook: MGCA's frozen prototypes stay out of AdamW entirely."""

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from fixture_shards import write_shards  # noqa: E402

from syncxr.data.sources import open_data  # noqa: E402
from syncxr.train.api import resolve_data  # noqa: E402
from syncxr.train.config import load_config  # noqa: E402
from syncxr.train.loop import Trainer  # noqa: E402

QUICK = Path(__file__).parents[2] / "configs" / "train" / "quick.yaml"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("ds"), 60, seed=3, size=32)


def test_mgca_prototype_steps_equal_the_reference(dataset, tmp_path):
    # 54 training pairs / 16 = 3 optimizer steps per epoch, 2 epochs; prototypes frozen in epoch 0.
    cfg = resolve_data(load_config(QUICK, [
        "train.progress=false", "train.epochs=2", "train.batch_size=16", "train.eval_each_epoch=false",
        "model.image.image_size=32", "model.text.max_length=24", "objective.name=mgca",
        "objective.params={num_prototypes: 20, freeze_prototypes_epochs: 1, learned_attention: true}", "optim.weight_decay=0.05",
    ]), str(dataset))
    trainer = Trainer(cfg, open_data(cfg.data, seed=0), tmp_path / "run")
    proto = trainer.objective.prototypes.weight
    start = proto.detach().clone()
    result = trainer.fit()
    assert result.step == 6
    # The released code sets the grads to None in epoch 0: AdamW stepped the prototypes only in epoch 1.
    assert int(trainer.optimizer.state[proto]["step"]) == 3
    other = trainer.objective.word_attn.in_proj_weight
    assert int(trainer.optimizer.state[other]["step"]) == 6
    assert not torch.allclose(proto.detach(), start, atol=1e-4)  # and they did train afterwards
