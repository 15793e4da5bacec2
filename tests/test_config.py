import pytest

from syncxr.config import apply_overrides, config_hash, load_config, parse_override
from syncxr.errors import UserError
from syncxr.pipeline.config import GenerateConfig


def test_overrides_parse_yaml_values():
    assert parse_override("image.size=512") == (["image", "size"], 512)
    assert parse_override("entities.k=[1, 3]") == (["entities", "k"], [1, 3])
    assert parse_override("qc.bank=null") == (["qc", "bank"], None)
    raw = apply_overrides({"image": {"size": 256}}, ["image.size=128", "write.filler=false"])
    assert raw == {"image": {"size": 128}, "write": {"filler": False}}


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_bad_override_is_a_user_error(bad):
    with pytest.raises(UserError, match="--set"):
        parse_override(bad)


def test_unknown_key_names_the_path(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("image:\n  sise: 256\n")
    with pytest.raises(UserError, match=r"image\.sise: unknown key"):
        load_config(GenerateConfig, p)


@pytest.mark.parametrize(
    "text, where",
    [
        ("image:\n  size: big\n", "image.size"),
        ("image:\n  size: 4\n", "image.size"),
        ("image:\n  size: 96\n", "image.size"),
        ("n: 0\n", "n"),
        ("entities:\n  k: [5, 2]\n", "entities.k"),
        ("verify:\n  mode: exact\n", "write.filler"),
        ("- a\n- b\n", "mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_impossible_values_are_rejected_with_location(tmp_path, text, where):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(GenerateConfig, p)
    assert where in str(e.value)
    assert str(p) in str(e.value)


def test_missing_file():
    with pytest.raises(UserError, match="not found"):
        load_config(GenerateConfig, "/nonexistent/c.yaml")


def test_hash_is_stable_and_sensitive():
    a = load_config(GenerateConfig, None, ["n=10"])
    b = load_config(GenerateConfig, None, ["n=10"])
    c = load_config(GenerateConfig, None, ["n=11"])
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_quick_preset_is_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(GenerateConfig, root / "configs/generate/quick.yaml")
    assert cfg.image.backend == "phantom" and cfg.verify.mode == "impression"
