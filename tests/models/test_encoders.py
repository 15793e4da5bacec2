"""Contract tests over the image encoder registry and the text encoders (built-in and hf:)."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from syncxr.errors import UserError  # noqa: E402
from syncxr.models.factory import ImageConfig, ModelConfig, build_image_encoder, build_model  # noqa: E402
from syncxr.models.registry import IMAGE_ENCODERS  # noqa: E402
from syncxr.models.text import build_text_encoder, train_wordpiece  # noqa: E402

CORPUS = ["no acute cardiopulmonary process", "small left pleural effusion", "right upper lobe opacity"] * 10
# Every registered encoder; the largest (86M-parameter ViT-B, ResNet-50) only in the full run: the
# fast loop builds a small one of each family (same classes, other widths).
LARGE = {"vit_base", "resnet50"}
assert LARGE <= set(IMAGE_ENCODERS.names())
EVERY_ARCH = [pytest.param(a, marks=pytest.mark.slow) if a in LARGE else a for a in IMAGE_ENCODERS.names()]


@pytest.mark.parametrize("arch", EVERY_ARCH)
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


# -- multi-scale feature maps and [CLS] attention ---------------------------------------------

EXPECTED_MAPS = {  # (channels, side) per map for a 64 px input, coarsest last
    "resnet18": [(64, 16), (128, 8), (256, 4), (512, 2)],
    "resnet50": [(256, 16), (512, 8), (1024, 4), (2048, 2)],
    "tiny_cnn": [(16, 32), (32, 16), (64, 8), (128, 4)],
    "vit_tiny": [(64, 8), (64, 8)],
    "vit_small": [(384, 4)] * 4,
    "vit_base": [(768, 4)] * 4,
}


@pytest.mark.parametrize("arch", EVERY_ARCH)
def test_image_feature_maps_for_every_encoder(arch):
    torch.manual_seed(0)
    enc = build_image_encoder(ImageConfig(arch=arch, image_size=64), embed_dim=8).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        maps = enc.image_feature_maps(x)
        out = enc(x)
    assert [(m.shape[1], m.shape[-1]) for m in maps] == EXPECTED_MAPS[arch]
    assert all(m.shape[0] == 2 and m.shape[-2] == m.shape[-1] for m in maps)
    assert tuple(maps[-1].shape[-2:]) == out.grid  # the coarsest map is the grid of `local`
    if not arch.startswith("vit_"):  # conv: the last map is exactly the trunk output behind `local`
        assert torch.allclose(out.local, enc.local_proj(maps[-1].flatten(2).transpose(1, 2)), atol=1e-5)


def test_vit_blocks_and_cls_attention():
    torch.manual_seed(0)
    enc = build_image_encoder(ImageConfig(arch="vit_tiny", image_size=64), embed_dim=8).eval()
    assert enc.feature_blocks == (0, 1)
    assert build_image_encoder(ImageConfig(arch="vit_small", image_size=32), 8).feature_blocks == (2, 5, 8, 11)
    x = torch.randn(2, 1, 64, 64)
    seen = {}
    attn = enc.vit.blocks[-1].attn
    handle = attn.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0]))
    with torch.no_grad():
        out = enc(x)
        handle.remove()
        # reference: the full attention matrix of the last block, [CLS] row, mean over heads
        h = seen["x"]
        qkv = attn.qkv(h).reshape(2, h.shape[1], 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        full = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * attn.scale, dim=-1)  # (B, H, N, N)
        want = full[:, :, 0, 1:].mean(1)
    assert out.attn_weights.shape == (2, 64) and torch.allclose(out.attn_weights, want, atol=1e-6)
    assert (out.attn_weights.sum(1) < 1).all()  # the [CLS] self-attention share is excluded


def test_dual_encoder_feature_maps_and_text_cls_attention():
    model = build_model(ModelConfig(embed_dim=8, image={"arch": "tiny_cnn", "image_size": 32},
                                    text={"vocab_size": 200, "max_length": 16}), corpus=CORPUS).eval()
    maps = model.image_feature_maps(torch.randn(1, 1, 32, 32))
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]
    batch = model.tokenize(["small left pleural effusion", "opacity"])
    with torch.no_grad():
        out = model.encode_text(**batch)
        text = model.text.model
        text.set_attn_implementation("eager")  # eager attention returns its probabilities
        ref = text(**batch, output_attentions=True).attentions[-1][:, :, 0].mean(1)
    assert torch.allclose(out.attn_weights, ref, atol=1e-6)
    assert torch.allclose(out.attn_weights.sum(1), torch.ones(2)) and (out.attn_weights[batch["attention_mask"] == 0] == 0).all()


def test_dual_encoder_falls_back_to_the_local_grid():
    class GridOnly(torch.nn.Module):  # an image encoder without image_feature_maps
        def forward(self, x):
            from syncxr.models.base import EncoderOutput

            local = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)  # (B, h*w, D)
            return EncoderOutput(global_emb=x.new_zeros(2, 3), local=local, grid=(2, 3))

    text = build_text_encoder("bert-tiny-builtin", 3, 12, corpus=CORPUS, vocab_size=200)
    from syncxr.models.factory import DualEncoder

    (m,) = DualEncoder(GridOnly(), text).image_feature_maps(torch.zeros(2, 1, 8, 8))
    # channel 2 of patch (row 1, col 0) of image 1 is local[1, 1 * 3 + 0, 2] = 18 + 9 + 2
    assert m.shape == (2, 3, 2, 3) and m[1, 2, 1, 0] == 29


def test_builtin_text_encoder_distinguishes_texts_at_init():
    """Mean pooling (auto for built-in BERTs): different reports differ before any training, so
    contrastive learning does not stall on identical [CLS] states (measured cos 1.000 with cls)."""
    import torch

    from syncxr.models.text import build_text_encoder

    texts = ["Large left pleural effusion.", "No pneumothorax. Heart size is normal.",
             "Right upper lobe consolidation.", "Pacemaker leads in the right ventricle."] * 4
    cos = {}
    for pooling in ("mean", "cls"):
        torch.manual_seed(0)
        enc = build_text_encoder("bert-tiny-builtin", 32, 24, corpus=texts, vocab_size=200, pooling=pooling).eval()
        with torch.no_grad():
            g = torch.nn.functional.normalize(enc(**enc.tokenize(texts[:4])).global_emb, dim=-1)
        off = (g @ g.T)[~torch.eye(4, dtype=torch.bool)]
        cos[pooling] = off.mean().item()
    assert build_text_encoder("bert-tiny-builtin", 32, 24, corpus=texts, vocab_size=200).pooling == "mean"
    assert cos["mean"] < cos["cls"]
    assert cos["mean"] < 0.99


@pytest.mark.parametrize("arch", ["tiny_cnn", "resnet18"])
def test_global_space_patches_average_to_the_global_embedding(arch):
    from syncxr.models.registry import IMAGE_ENCODERS

    torch.manual_seed(0)
    enc = IMAGE_ENCODERS.create(arch, {}, {"embed_dim": 16, "image_size": 64}).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        out = enc.encode_patches_global(x)
        plain = enc(x)
    h, w = out.grid
    assert out.local.shape == (2, h * w, 16)
    # Every patch's embedding is its share of the global one: their mean IS the global embedding.
    assert torch.allclose(out.local.mean(1), plain.global_emb, atol=1e-5)
    assert not torch.allclose(out.local, plain.local)  # not the (possibly untrained) local head


def test_local_head_trained_from_state():
    from syncxr.models.pretrained import recorded_local_head
    from syncxr.objectives.registry import local_head_trained

    assert recorded_local_head({"trained_heads": {"local": True}}) is True
    assert recorded_local_head({"config": {}}) is None

    assert local_head_trained({"trained_heads": {"global": True, "local": False}}) is False
    assert local_head_trained({"config": {"objective": {"name": "convirt"}}}) is False  # older checkpoints
    assert local_head_trained({"config": {"objective": {"name": "gloria"}}}) is True


@pytest.mark.parametrize("arch, grid, dim", [("resnet18", (4, 4), 256), ("tiny_cnn", (8, 8), 64)])
def test_penultimate_local_layer(arch, grid, dim):
    cfg = ImageConfig(arch=arch, image_size=64, local_layer="penultimate")
    enc = build_image_encoder(cfg, embed_dim=16).eval()
    with torch.no_grad():
        out = enc(torch.randn(2, 1, 64, 64))
        glob = enc.encode_patches_global(torch.randn(2, 1, 64, 64))
    assert out.grid == grid and out.local.shape == (2, grid[0] * grid[1], 16)  # layer3: twice layer4's grid
    assert enc.local_proj.in_features == dim
    assert glob.grid == (grid[0] // 2, grid[1] // 2)  # global-space patches stay on the pooled (last) map
    with pytest.raises(UserError, match="needs a convolutional encoder"):
        build_image_encoder(ImageConfig(arch="vit_tiny", image_size=32, local_layer="penultimate"), embed_dim=16)


def test_imagenet_weights_come_from_the_local_torch_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cfg = ImageConfig(arch="resnet18", image_size=64, weights="imagenet")
    with pytest.raises(UserError, match=r"not in the local torch cache \(expected .*resnet18-f37072fd\.pth.*never downloads"):
        build_image_encoder(cfg, embed_dim=16)
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(weights=None).state_dict()  # stands in for the ImageNet file
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(ref, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    enc = build_image_encoder(cfg, embed_dim=16)
    own = enc.state_dict()
    assert torch.equal(own["trunk.4.0.conv1.weight"], ref["layer1.0.conv1.weight"])
    assert torch.equal(own["trunk.0.weight"], ref["conv1.weight"].sum(dim=1, keepdim=True))  # RGB stem folded
    assert not torch.equal(build_image_encoder(ImageConfig(arch="resnet18", image_size=64), 16).state_dict()
                           ["trunk.4.0.conv1.weight"], ref["layer1.0.conv1.weight"])


def test_imagenet_weights_for_a_vit_come_from_the_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="not in the local Hugging Face cache.*huggingface-cli download"):
        build_image_encoder(ImageConfig(arch="vit_small", image_size=32, weights="imagenet"), embed_dim=16)
    with pytest.raises(UserError, match="no ImageNet weights for 'tiny_cnn'"):
        build_image_encoder(ImageConfig(arch="tiny_cnn", image_size=32, weights="imagenet"), embed_dim=16)


@pytest.mark.parametrize("head, n_linear, n_bn", [("linear", 1, 0), ("mlp", 2, 0), ("mlp_bn", 2, 2)])
def test_projection_heads(head, n_linear, n_bn):
    from syncxr.models.heads import TokenBatchNorm

    cfg = ModelConfig.model_validate({"embed_dim": 16, "head": head, "head_hidden": 32,
                                      "image": {"arch": "resnet18", "image_size": 64},
                                      "text": {"name": "bert-tiny-builtin", "max_length": 16, "vocab_size": 200}})
    model = build_model(cfg, corpus=CORPUS)
    for proj in (model.image.global_proj, model.image.local_proj, model.text.global_proj, model.text.local_proj):
        mods = list(proj.modules())
        assert sum(isinstance(m, torch.nn.Linear) for m in mods) == n_linear
        assert sum(isinstance(m, TokenBatchNorm) for m in mods) == n_bn
    tok = model.tokenize(CORPUS[:3])
    img, txt = model(torch.randn(3, 1, 64, 64), tok["input_ids"], tok["attention_mask"])
    assert img.global_emb.shape == (3, 16) and txt.local.shape[-1] == 16 and img.local.shape[-1] == 16
    if head == "mlp_bn":  # MGCA's last BatchNorm has no affine: a standardised embedding per dimension
        assert torch.allclose(img.global_emb.mean(0), torch.zeros(16), atol=1e-5)
    patches = model.eval().encode_image_patches(torch.randn(2, 1, 64, 64))
    assert patches.local.shape == (2, 4, 16)


def test_max_pooling_of_the_text():
    enc = build_text_encoder("bert-tiny-builtin", 16, 16, corpus=CORPUS, vocab_size=200, pooling="max").eval()
    tok = enc.tokenize(["small left pleural effusion"])
    hidden = enc.model(**tok).last_hidden_state[0]  # (L, H)
    words = tok["attention_mask"][0].bool() & ~torch.isin(tok["input_ids"][0], enc.special_ids)
    with torch.no_grad():
        out = enc(tok["input_ids"], tok["attention_mask"])
        assert torch.allclose(out.global_emb[0], enc.global_proj(hidden[words].amax(0)), atol=1e-5)


def test_subwords_are_merged_into_words():
    enc = build_text_encoder("bert-tiny-builtin", 16, 32, corpus=CORPUS, vocab_size=120).eval()
    text = "bronchiectasis effusion"  # a word outside the corpus: split into pieces
    tok = enc.tokenize([text, "small opacity"])
    pieces = enc.tokenizer.convert_ids_to_tokens(tok["input_ids"][0])
    assert any(p.startswith("##") for p in pieces)
    with torch.no_grad():
        plain = enc(**tok)
        enc.merge_subwords = True
        merged = enc(**tok)
    assert merged.mask[0].tolist() == [True, True] and merged.mask[1].tolist() == [True, True]
    assert torch.equal(merged.global_emb, plain.global_emb)  # the global embedding is unchanged
    hidden = enc.model(**tok).last_hidden_state[0]  # (L, H)
    first_word = [i for i, p in enumerate(pieces) if p not in ("[CLS]", "[SEP]", "[PAD]")]
    n_first = 1 + next(k for k, i in enumerate(first_word[1:]) if not pieces[i].startswith("##"))
    with torch.no_grad():
        want = enc.local_proj(hidden[first_word[:n_first]].sum(0))
    assert torch.allclose(merged.local[0, 0], want, atol=1e-5)


def test_merged_words_carry_summed_attention_weights():
    cfg = ModelConfig.model_validate({"embed_dim": 16, "image": {"arch": "tiny_cnn", "image_size": 32},
                                      "text": {"name": "bert-tiny-builtin", "max_length": 32, "vocab_size": 120,
                                               "merge_subwords": True}})
    model = build_model(cfg, corpus=CORPUS).eval()
    tok = model.tokenize(["bronchiectasis effusion"])
    with torch.no_grad():
        out = model.encode_text(tok["input_ids"], tok["attention_mask"])
    assert out.local.shape[1] == out.attn_weights.shape[1] == 2
    assert out.attn_weights.sum() < 1.0  # the words' share; [CLS]/[SEP] take the rest


def test_the_pooler_is_dropped_only_where_the_model_class_takes_the_option():
    """Asked of the class's signature: a TypeError inside a model's constructor is a bug, not a
    reason to retry without the option."""
    from transformers import BertConfig, GPT2Config

    from syncxr.models.text import _no_pooler

    assert _no_pooler(BertConfig()) == {"add_pooling_layer": False}
    assert _no_pooler(GPT2Config()) == {}
    enc = build_text_encoder("bert-tiny-builtin", 16, 24, corpus=CORPUS, vocab_size=120)
    assert not any("pooler" in name for name, _ in enc.model.named_parameters())
