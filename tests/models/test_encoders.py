"""Contract tests over the image encoder registry and the text encoders (built-in and hf:)."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from syncxr.errors import UserError  # noqa: E402
from syncxr.models.factory import ImageConfig, ModelConfig, build_image_encoder, build_model  # noqa: E402
from syncxr.models.image import IMAGE_ENCODERS  # noqa: E402
from syncxr.models.text import build_text_encoder, train_wordpiece  # noqa: E402

CORPUS = ["no acute cardiopulmonary process", "small left pleural effusion", "right upper lobe opacity"] * 10


@pytest.mark.parametrize("arch", IMAGE_ENCODERS.names())
def test_image_encoder_contract(arch):
    torch.manual_seed(0)
    size = 64 if arch.startswith("vit_") or arch == "tiny_cnn" else 64
    enc = build_image_encoder(ImageConfig(arch=arch, image_size=size), embed_dim=24)
    out = enc(torch.randn(2, 1, size, size))
    h, w = out.grid
    assert out.global_emb.shape == (2, 24) and out.local.shape == (2, h * w, 24)
    if arch in ("tiny_cnn", "vit_tiny"):  # gradient check on the small ones (speed)
        (out.global_emb.sum() + out.local.sum()).backward()
        assert all(p.grad is not None for p in enc.parameters())


def test_pretrained_rgb_weights_are_folded(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    ref = torchvision.models.resnet18(weights=None)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "r18.safetensors"))
    enc = build_image_encoder(ImageConfig(arch="resnet18", pretrained=str(tmp_path / "r18.safetensors")), 16)
    stem = enc.trunk[0].weight
    assert stem.shape == (64, 1, 7, 7)
    assert torch.allclose(stem, ref.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(enc.trunk[7][1].conv2.weight, ref.layer4[1].conv2.weight)
    with pytest.raises(UserError, match="not found"):
        build_image_encoder(ImageConfig(arch="resnet18", pretrained=str(tmp_path / "none.pt")), 16)


def test_builtin_text_encoder_masks_specials():
    enc = build_text_encoder("bert-tiny-builtin", 16, 12, corpus=CORPUS, vocab_size=200)
    batch = enc.tokenize(["small left pleural effusion", "opacity"])
    out = enc(**batch)
    assert out.global_emb.shape == (2, 16) and out.local.shape[:2] == batch["input_ids"].shape
    assert not out.mask[:, 0].any()  # [CLS] is not a word
    assert out.mask[1].sum() == 1  # "opacity" is one word piece of the trained vocabulary


def test_hf_text_encoder_from_local_folder(tmp_path):
    from transformers import BertConfig, BertModel

    tok = train_wordpiece(CORPUS, 200)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    model = build_model(ModelConfig(embed_dim=8, text={"name": f"hf:{tmp_path}", "max_length": 16}))
    out = model.encode_text(**model.tokenize(["left effusion"]))
    assert out.global_emb.shape == (1, 8)
    with pytest.raises(UserError, match="cannot load text model"):
        build_text_encoder(f"hf:{tmp_path}/missing", 8, 16)
    with pytest.raises(UserError, match="unknown text encoder"):
        build_text_encoder("gpt", 8, 16)


def test_wordpiece_ids_are_reproducible():
    a, b = train_wordpiece(CORPUS * 3, 300), train_wordpiece(CORPUS * 3, 300)
    assert a.get_vocab() == b.get_vocab() and a.pad_token_id == 0 and a.cls_token_id == 2
