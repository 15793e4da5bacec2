"""The pluggable text embedder: a tiny random transformers encoder saved offline (no download)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from syncxr.errors import UserError

pytest.importorskip("torch")
pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    import torch
    from tiny import clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = clip_tokenizer()
    model = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id))
    path = tmp_path_factory.mktemp("enc") / "tiny-clip-text"
    tok.save_pretrained(path)
    model.save_pretrained(path)
    return path


def test_transformers_embedder_gives_unit_rows_and_cosine_one_for_the_same_text(tiny_encoder):
    from syncxr.audit.text import text_embedder

    emb = text_embedder("transformers", str(tiny_encoder)).fit(["ignored"])
    e = emb.embed(["small right pleural effusion", "cardiomegaly", "small right pleural effusion"])
    assert e.shape == (3, 16) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[2] == pytest.approx(1.0, abs=1e-5) and e[0] @ e[1] < 0.999


def test_the_privacy_audit_uses_the_named_embedder_and_still_finds_the_copy(planted, sim_corpus, tiny_encoder, tmp_path):
    from syncxr.audit.privacy import run_privacy_audit

    ds, copy_id, real_id = planted
    s = run_privacy_audit(ds, sim_corpus, "mimic", tmp_path / "p", measures=["text_emb"],
                          text_embedder="transformers", text_model=str(tiny_encoder), baseline=10)
    assert "transformers" in s["measures"]["text_emb"]["what"] and s["measures"]["text_emb"]["exact_copies"] >= 1
    import csv

    with open(tmp_path / "p" / "closest.csv") as f:
        rows = list(csv.DictReader(f))
    planted_row = next(r for r in rows if r["synthetic_id"] == copy_id)
    assert planted_row["text_emb_real_id"] == real_id and float(planted_row["text_emb"]) == pytest.approx(1.0, abs=1e-5)


def test_the_transformers_embedder_needs_a_model_and_never_downloads_by_default():
    from syncxr.audit.text import text_embedder

    with pytest.raises(UserError, match="--text-model"):
        text_embedder("transformers")
    assert type(text_embedder()).__name__ == "TfidfEmbedder"
