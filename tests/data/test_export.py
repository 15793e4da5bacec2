"""Exports: WebDataset tars and a MIMIC-CXR-JPG-like folder that syncxr's own mimic source reads."""

from __future__ import annotations

import json
import tarfile

import pytest

from syncxr.config import load_config
from syncxr.data.export import export_mimic, export_webdataset
from syncxr.errors import UserError
from syncxr.pipeline.config import GenerateConfig
from syncxr.pipeline.runner import run_generate


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "ds"
    cfg = load_config(GenerateConfig, None, ["n=12", "image.size=128", "qc.enabled=false", "shard_size=5",
                                             "entities.source=ontology"])
    run_generate(cfg, out, workers=1)
    return out


def test_webdataset_tars(small_dataset, tmp_path):
    paths = export_webdataset(small_dataset, tmp_path / "wds", samples_per_tar=5)
    names = [n for p in paths for n in tarfile.open(p).getnames()]
    keys = {n.rsplit(".", 1)[0] for n in names}
    assert len(names) == 3 * len(keys) and len(paths) == -(-len(keys) // 5)
    with tarfile.open(paths[0]) as tar:
        first = sorted(tar.getnames())[0].rsplit(".", 1)[0]
        meta = json.loads(tar.extractfile(f"{first}.json").read())
        assert set(meta) == {"labels", "entities", "seed"}
        assert tar.extractfile(f"{first}.png").read()[:4] == b"\x89PNG"
        assert tar.extractfile(f"{first}.txt").read().startswith(b"FINDINGS:")
    again = export_webdataset(small_dataset, tmp_path / "wds2", samples_per_tar=5)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_mimic_folder_reads_back_through_the_mimic_source(small_dataset, tmp_path):
    root = export_mimic(small_dataset, tmp_path / "mimic")
    from syncxr.data.sources import open_data

    src = open_data(f"mimic:{root}", seed=0)
    assert len(src) >= 10
    img, text = src[0]
    assert img.ndim == 2 and img.dtype.name == "uint8" and len(text) > 10


def test_export_of_a_non_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="manifest"):
        export_webdataset(tmp_path, tmp_path / "o")
