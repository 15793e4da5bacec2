import numpy as np
import pytest
import torch
from evaluate_fakes import FakeDataset, make_pretrained, random_labels

from syncxr.errors import UserError
from syncxr.evaluate.segment import SegmentOptions, UNetDecoder, dice_scores, feature_maps, run_segment, seg_loss


@pytest.fixture(scope="module")
def dataset():
    return FakeDataset("fakeseg", ["pneumothorax"], random_labels(60, 1, seed=6, p=0.6))


def test_dice_scores_hand_cases():
    a = np.zeros((3, 4, 4), bool)
    b = np.zeros((3, 4, 4), bool)
    a[0, :2] = True
    b[0, :1] = True  # 8 predicted, 4 true, 4 overlap -> 8/12
    a[1, 0, 0] = True  # prediction on an empty mask -> 0
    # image 2: both empty -> 1
    assert dice_scores(a, b).tolist() == pytest.approx([8 / 12, 0.0, 1.0])


def test_loss_is_lower_for_the_right_mask():
    t = torch.zeros(1, 1, 8, 8)
    t[..., :4, :] = 1
    good, bad = (t * 20 - 10), (10 - t * 20)
    assert seg_loss(good, t) < 0.1 < seg_loss(bad, t)


def test_decoder_uses_skip_maps_and_reaches_input_size():
    dec = UNetDecoder([(8, 16), (16, 8), (32, 4)], size=32)
    maps = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    assert dec(maps).shape == (2, 1, 32, 32)
    assert dec.sides == [8, 16, 32]
    assert dec.steps[0][0].in_channels == 32 + 16 and dec.steps[1][0].in_channels == 64 + 8


def test_feature_maps_prefers_intermediate_maps():
    class WithMaps(torch.nn.Module):
        def image_feature_maps(self, x):
            return [torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 8, 8)]

    maps = feature_maps(WithMaps(), torch.zeros(1, 1, 32, 32))
    assert [m.shape[-1] for m in maps] == [8, 2]  # finest first
    pre = make_pretrained(["pneumothorax"], local=False)
    with pytest.raises(UserError, match="segmentation needs image feature maps"):
        feature_maps(pre.model, torch.zeros(1, 1, 32, 32))


@pytest.mark.slow
def test_segmentation_learns_the_masks(dataset, tmp_path):
    opts = SegmentOptions(n_boot=10, fractions=[0.05, 1.0], epochs=12, batch_size=8, lr=1e-2, decoder_width=8)
    out = run_segment(make_pretrained(["pneumothorax"]), dataset, opts, tmp_path)
    res = out.result
    assert res["finding"] == "pneumothorax"
    # Chance level: the cell is 1/4 x 1/4 of the input, so an all-ones prediction scores 2/17 ~ 0.12.
    assert res["dice@1"] > 0.8
    block = res["fractions"]["1"]["per_finding"]["pneumothorax"]
    assert block["n_pos"] == int(dataset.labels[out.predictions["image"].str[3:7].astype(int).unique()].sum())
    assert (tmp_path / "splits.json").is_file()


def test_several_findings_need_a_choice(tmp_path):
    ds = FakeDataset("fakeseg2", ["pneumothorax", "pleural_effusion"], random_labels(10, 2))
    with pytest.raises(UserError, match="choose one with the `finding` option"):
        run_segment(make_pretrained(ds.findings), ds, SegmentOptions(), tmp_path)


def test_same_size_maps_are_concatenated():
    class ViTLike(torch.nn.Module):  # several blocks on one patch grid, plus nothing finer
        def image_feature_maps(self, x):
            return [torch.ones(2, 4, 4, 4), torch.zeros(2, 6, 4, 4)]

    (m,) = feature_maps(ViTLike(), torch.zeros(2, 1, 32, 32))
    assert m.shape == (2, 10, 4, 4) and m[:, :4].eq(1).all() and m[:, 4:].eq(0).all()
    dec = UNetDecoder([(m.shape[1], m.shape[-1])], size=32, width=8)
    assert dec.steps[0][0].in_channels == 10 and dec.sides == [8, 16, 32]


@pytest.fixture(scope="module")
def tiny_cnn_pretrained():
    from types import SimpleNamespace

    from evaluate_fakes import FakePreprocess

    from syncxr.models.factory import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(embed_dim=8, image={"arch": "tiny_cnn", "image_size": 32},
                                    text={"vocab_size": 120, "max_length": 8}),
                        corpus=["no acute findings", "small pneumothorax"] * 5).eval()
    return SimpleNamespace(model=model, preprocess=FakePreprocess(32))


def test_real_encoder_gives_the_decoder_skip_connections(tiny_cnn_pretrained):
    maps = feature_maps(tiny_cnn_pretrained.model, torch.zeros(1, 1, 32, 32))
    assert [(m.shape[1], m.shape[-1]) for m in maps] == [(16, 16), (32, 8), (64, 4), (128, 2)]
    dec = UNetDecoder([(m.shape[1], m.shape[-1]) for m in maps], size=32, width=8)
    assert [s[0].in_channels for s in dec.steps] == [128 + 64, 8 + 32, 8 + 16, 8]


@pytest.mark.slow
def test_segmentation_with_a_real_frozen_encoder_beats_chance(dataset, tmp_path, tiny_cnn_pretrained):
    # The full DualEncoder path (image_feature_maps -> U-Net with skips) on a randomly initialised,
    # frozen tiny CNN still learns the masks far above chance (~0.12, see above); measured 0.99.
    opts = SegmentOptions(n_boot=10, fractions=[1.0], epochs=8, batch_size=8, lr=1e-2, decoder_width=8)
    res = run_segment(tiny_cnn_pretrained, dataset, opts, tmp_path).result
    assert res["dice@1"] > 0.6
