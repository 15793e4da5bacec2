"""Weights fingerprints: computed from a folder without loading it; stable under copying, changed
by a config edit, a safetensors header change or new weights; hub names via the local cache."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest

from syncxr.weights import SMALL_FILE, fingerprint, is_resolved


def _safetensors(path, tensors: dict[str, np.ndarray]) -> None:
    """Write a minimal safetensors file by hand (8-byte header length, JSON header, payload)."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


@pytest.fixture()
def model_dir(tmp_path):
    root = tmp_path / "roentgen"
    (root / "unet").mkdir(parents=True)
    (root / "tokenizer").mkdir()
    (root / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (root / "unet" / "config.json").write_text('{"sample_size": 64}')
    (root / "tokenizer" / "vocab.json").write_text('{"a": 0}')
    rng = np.random.default_rng(0)
    big = rng.standard_normal(SMALL_FILE // 4 + 1000).astype(np.float32)  # > 1 MiB: sampled, not read whole
    _safetensors(root / "unet" / "diffusion_pytorch_model.safetensors", {"w": big, "b": np.zeros(3)})
    return root


def test_folder_fingerprint_is_stable_under_copy_and_changes_with_content(model_dir, tmp_path):
    fp = fingerprint(model_dir)
    assert fp.startswith("sha256:") and len(fp) == 7 + 64 and is_resolved(fp)
    assert fingerprint(str(model_dir)) == fp
    copy = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(model_dir, copy)
    assert fingerprint(copy) == fp  # where it lives and what it is called do not matter

    (copy / "unet" / "config.json").write_text('{"sample_size": 32}')
    changed_config = fingerprint(copy)
    assert changed_config != fp

    shutil.rmtree(copy)
    shutil.copytree(model_dir, copy)
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    big = np.random.default_rng(0).standard_normal(SMALL_FILE // 4 + 1000).astype(np.float32)
    _safetensors(weights, {"w_renamed": big, "b": np.zeros(3)})  # same sizes, other header
    assert fingerprint(copy) not in (fp, changed_config)

    _safetensors(weights, {"w": big * 1.01, "b": np.zeros(3)})  # same header, fine-tuned values
    assert fingerprint(copy) not in (fp, changed_config)

    _safetensors(weights, {"w": big, "b": np.zeros(3)})  # back to the original
    assert fingerprint(copy) == fp


def test_big_weight_payloads_are_not_read_whole(model_dir, monkeypatch):
    import syncxr.weights as weights

    reads = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, pos):
            return self.f.seek(pos)

        def read(self, n=-1):
            data = self.f.read(n)
            reads.append(len(data))
            return data

    monkeypatch.setattr(weights, "open", lambda p, mode="r": Spy(real_open(p, mode)), raising=False)
    fingerprint(model_dir / "unet" / "diffusion_pytorch_model.safetensors")
    size = (model_dir / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert sum(reads) < size / 4  # header + two 64 KiB samples of a ~1 MiB payload


def test_hub_names_resolve_through_the_local_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert fingerprint("microsoft/rad-dino") == "hub:microsoft/rad-dino:unresolved"
    assert not is_resolved("hub:microsoft/rad-dino:unresolved")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--microsoft--rad-dino"
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit + "\n")
    assert fingerprint("microsoft/rad-dino") == f"hub:microsoft/rad-dino@{commit}"
    assert fingerprint(f"microsoft/rad-dino@{commit}") == f"hub:microsoft/rad-dino@{commit}"
    assert fingerprint("microsoft/rad-dino@v2") == "hub:microsoft/rad-dino:unresolved"
    assert is_resolved(fingerprint("microsoft/rad-dino"))
    assert fingerprint(str(tmp_path / "no" / "such" / "folder")).startswith("missing:")
