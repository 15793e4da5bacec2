"""Hostile and careless input, command by command (issue 12, items 5, 7, 8, 9, 11-14).

The table `CASES` runs each command in-process through typer's CliRunner and expects exit code 2,
a message fragment, no traceback and no leftovers: no temp files, no half-written output, no empty
--out folder. Filesystem failures are injected (CI runs as root, which writes into read-only
folders). The tests after the table cover what does not end in exit 2: skipped bombs, 16-bit
images, sanitised names, stale tars, the atomic writer's permissions.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import struct
import sys
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from syncxr import fsio
from syncxr.cli import _register_optional_commands, app
from syncxr.errors import UserError

sys.path.insert(0, str(Path(__file__).parent / "train"))
from fixture_shards import write_shards  # noqa: E402

_register_optional_commands()
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
QUICK_TRAIN = ROOT / "configs" / "train" / "quick.yaml"
QUICK_GEN = ROOT / "configs" / "generate" / "quick.yaml"


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


# ----------------------------------------------------------------------------- builders

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")


def noise_png(path: Path, size: int = 128, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
    return path


def png16(path: Path, size: int = 96) -> Path:
    """A 16-bit grayscale PNG with values 1000..3000 (a gradient): 8-bit clipping makes it white."""
    arr = np.linspace(1000, 3000, size * size).reshape(size, size).astype(np.uint16)
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I;16")
    return path


def leftovers(root: Path) -> list[str]:
    """Temp files anywhere under root."""
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]


def reports_csv(path: Path, ids: list[str]) -> Path:
    rows = "".join(f"{i},No pleural effusion.\n" for i in ids)
    path.write_text("uid,findings\n" + rows)
    return path


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small generated syncxr dataset (6 samples, 2 shards)."""
    from syncxr.config import load_config
    from syncxr.pipeline.config import GenerateConfig
    from syncxr.pipeline.runner import run_generate

    out = tmp_path_factory.mktemp("gen") / "ds"
    cfg = load_config(GenerateConfig, None, ["n=6", "image.size=128", "qc.enabled=false", "shard_size=3",
                                             "entities.source=ontology"])
    run_generate(cfg, out, workers=1)
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("pairs"), 48, seed=1, shard_size=48)


@pytest.fixture(scope="module")
def run_dir(pairs, tmp_path_factory) -> Path:
    """A tiny finished training run (checkpoint + latest.json)."""
    from syncxr.train.api import train

    out = tmp_path_factory.mktemp("run") / "run"
    train(QUICK_TRAIN, str(pairs), out, ["train.progress=false", "train.epochs=1", "train.batch_size=16"])
    assert (out / "latest.json").is_file()
    return out


@pytest.fixture(scope="module")
def bank_file(tmp_path_factory) -> Path:
    from syncxr.qc.bank import bank_from_images

    d = tmp_path_factory.mktemp("bank")
    return bank_from_images([noise_png(d / "a.png"), noise_png(d / "b.png", seed=1)]).save(d / "bank.npz")


# ----------------------------------------------------------------------------- the table

@dataclass
class Case:
    """`setup(tmp, fx, monkeypatch) -> args`; `absent`: paths (relative to tmp) that must not exist."""

    id: str
    setup: Callable
    fragment: str
    absent: list[str] = field(default_factory=list)
    fixtures: tuple[str, ...] = ()


def _yaml(tmp: Path, name: str, data: str | bytes) -> Path:
    p = tmp / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def _no_space(monkeypatch, where: str = "replace") -> None:
    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsio.os, where, boom)


def _no_permission(monkeypatch) -> None:
    def boom(*a, dir=None, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(fsio.tempfile, "mkstemp", boom)


def _read_only_mkdir(monkeypatch) -> None:
    real = Path.mkdir

    def boom(self, *a, **k):
        if not self.exists():
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", boom)


def _copy_run(tmp: Path, run: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(run, dst)
    return dst


def _ckpt(run: Path) -> Path:
    return run / json.loads((run / "latest.json").read_text())["checkpoint"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _resume_args(run: Path, pairs: Path, *sets: str) -> list:
    args = ["train", "--config", QUICK_TRAIN, "--data", pairs, "--out", run, "--resume", "latest",
            "--set", "train.progress=false", "--set", "train.epochs=2", "--set", "train.batch_size=16"]
    for s in sets:
        args += ["--set", s]
    return args


def _dataset_copy(tmp: Path, ds: Path) -> Path:
    dst = tmp / "ds"
    shutil.copytree(ds, dst)
    return dst


CASES = [
    # item 5: one safe YAML loader everywhere
    Case("generate-billion-laughs", lambda t, fx, mp: ["generate", "-c", _yaml(t, "b.yaml", BILLION_LAUGHS), "--out", t / "o"],
         "billion laughs", ["o"]),
    Case("train-billion-laughs", lambda t, fx, mp: ["train", "-c", _yaml(t, "b.yaml", BILLION_LAUGHS), "--out", t / "o"],
         "billion laughs", ["o"]),
    Case("study-billion-laughs", lambda t, fx, mp: ["study", "-c", _yaml(t, "b.yaml", BILLION_LAUGHS), "--out", t / "o"],
         "billion laughs", ["o/study.html"]),
    Case("evaluate-suite-billion-laughs",
         lambda t, fx, mp: ["evaluate", "-c", _yaml(t, "b.yaml", BILLION_LAUGHS), "--checkpoint", t / "ck", "--out", t / "o"],
         "billion laughs", ["o"]),
    Case("generate-deep-nesting", lambda t, fx, mp: ["generate", "-c", _yaml(t, "d.yaml", "[" * 3000 + "]" * 3000), "--out", t / "o"],
         "nested", ["o"]),
    Case("train-deep-mapping",
         lambda t, fx, mp: ["train", "-c", _yaml(t, "d.yaml", "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "x: 1\n"),
                            "--out", t / "o"],
         "nested more than", ["o"]),
    Case("generate-utf16", lambda t, fx, mp: ["generate", "-c", _yaml(t, "u.yaml", "n: 5\n".encode("utf-16")), "--out", t / "o"],
         "not UTF-8", ["o"]),
    Case("train-latin1", lambda t, fx, mp: ["train", "-c", _yaml(t, "l.yaml", "# caf\xe9\nmodel: {}\n".encode("latin-1")), "--out", t / "o"],
         "not UTF-8", ["o"]),
    Case("generate-binary", lambda t, fx, mp: ["generate", "-c", _yaml(t, "x.yaml", png_header_only(4, 4)), "--out", t / "o"],
         "not UTF-8", ["o"]),
    Case("generate-nul-bytes", lambda t, fx, mp: ["generate", "-c", _yaml(t, "z.yaml", b"n: 5\x00\n"), "--out", t / "o"],
         "NUL", ["o"]),
    Case("generate-empty-yaml", lambda t, fx, mp: ["generate", "-c", _yaml(t, "e.yaml", "# nothing\n"), "--out", t / "o"],
         "is empty", ["o"]),
    Case("train-empty-yaml", lambda t, fx, mp: ["train", "-c", _yaml(t, "e.yaml", ""), "--out", t / "o"],
         "is empty", ["o"]),
    Case("generate-set-billion-laughs",
         lambda t, fx, mp: ["generate", "-c", QUICK_GEN, "--out", t / "o", "--set", "x=" + BILLION_LAUGHS.replace("\n", ", ").join("{}")],
         "billion laughs", ["o"]),
    # item 7: filesystem errors -> exit 2 with path and cause, no temp files
    Case("extract-disk-full",
         lambda t, fx, mp: (_no_space(mp), ["extract", "--in", reports_csv(t / "r.csv", ["a"]), "--id-column", "uid",
                                            "--text-columns", "findings", "--out", t / "out" / "l.csv"])[1],
         "disk is full", ["out/l.csv", "out"]),
    Case("extract-fsync-disk-full",
         lambda t, fx, mp: (_no_space(mp, "fsync"), ["extract", "--in", reports_csv(t / "r.csv", ["a"]), "--id-column", "uid",
                                                     "--text-columns", "findings", "--out", t / "l.csv"])[1],
         "disk is full", ["l.csv"]),
    Case("extract-permission-denied",
         lambda t, fx, mp: (_no_permission(mp), ["extract", "--in", reports_csv(t / "r.csv", ["a"]), "--id-column", "uid",
                                                 "--text-columns", "findings", "--out", t / "l.csv"])[1],
         "permission denied", ["l.csv"]),
    Case("extract-out-under-a-file",
         lambda t, fx, mp: (_yaml(t, "f", "x"), ["extract", "--in", reports_csv(t / "r.csv", ["a"]), "--id-column", "uid",
                                                 "--text-columns", "findings", "--out", t / "f" / "l.csv"])[1],
         "is an existing file", []),
    Case("sim-reports-disk-full", lambda t, fx, mp: (_no_space(mp), ["sim", "reports", "--n", "5", "--out", t / "r.csv"])[1],
         "disk is full", ["r.csv"]),
    Case("build-bank-disk-full",
         lambda t, fx, mp: (_no_space(mp), ["qc", "build-bank", "--per-defect", "1", "--size", "128", "--out", t / "b.npz"])[1],
         "disk is full", ["b.npz", "b.json"]),
    Case("build-bank-read-only-folder",
         lambda t, fx, mp: (_read_only_mkdir(mp), ["qc", "build-bank", "--per-defect", "1", "--size", "128", "--out", t / "ro" / "b.npz"])[1],
         "read-only", ["ro"]),
    Case("card-disk-full", lambda t, fx, mp: (_no_space(mp), ["card", _dataset_copy(t, fx["dataset"])])[1],
         "disk is full", [], ("dataset",)),
    Case("export-out-is-a-file",
         lambda t, fx, mp: (_yaml(t, "f", "x"), ["export", fx["dataset"], "--out", t / "f"])[1], "existing file", [], ("dataset",)),
    Case("export-disk-full", lambda t, fx, mp: (_no_space(mp), ["export", fx["dataset"], "--out", t / "w"])[1],
         "disk is full", ["w/syncxr-000000.tar"], ("dataset",)),
    Case("train-out-is-a-file",
         lambda t, fx, mp: (_yaml(t, "f", "x"), ["train", "-c", QUICK_TRAIN, "--data", fx["pairs"], "--out", t / "f"])[1],
         "existing file", [], ("pairs",)),
    Case("judge-out-is-a-file",
         lambda t, fx, mp: (noise_png(t / "a.png"), _yaml(t, "f", "x"),
                            ["qc", "judge", "--images", t, "--out", t / "f", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])[2],
         "existing file", []),
    # item 11: corrupt run files
    Case("qc-evaluate-corrupt-bank",
         lambda t, fx, mp: (shutil.copy(fx["bank_file"].with_suffix(".json"), t / "bank.json"), (t / "bank.npz").write_bytes(b"PK\x03\x04junk"),
                            ["qc", "evaluate", "--bank", t / "bank.npz", "--n", "2"])[2],
         "unreadable", [], ("bank_file",)),
    Case("qc-evaluate-list-sidecar",
         lambda t, fx, mp: (shutil.copy(fx["bank_file"], t / "bank.npz"), (t / "bank.json").write_text("[]"),
                            ["qc", "evaluate", "--bank", t / "bank.npz", "--n", "2"])[2],
         "expected a JSON object", [], ("bank_file",)),
    Case("card-list-manifest",
         lambda t, fx, mp: (ds := _dataset_copy(t, fx["dataset"]), (ds / "manifest.json").write_text("[1, 2]"), ["card", ds])[2],
         "expected a JSON object", [], ("dataset",)),
    Case("export-list-manifest",
         lambda t, fx, mp: (ds := _dataset_copy(t, fx["dataset"]), (ds / "manifest.json").write_text("[]"), ["export", ds, "--out", t / "w"])[2],
         "expected a JSON object", ["w"], ("dataset",)),
    Case("resume-truncated-optimizer",
         lambda t, fx, mp: (r := _copy_run(t, fx["run_dir"]), _truncate(_ckpt(r) / "optimizer.safetensors"), _resume_args(r, fx["pairs"]))[2],
         "cannot resume", [], ("run_dir", "pairs")),
    Case("resume-list-state",
         lambda t, fx, mp: (r := _copy_run(t, fx["run_dir"]), (_ckpt(r) / "state.json").write_text("[]"), _resume_args(r, fx["pairs"]))[2],
         "expected a JSON object", [], ("run_dir", "pairs")),
    Case("resume-truncated-state",
         lambda t, fx, mp: (r := _copy_run(t, fx["run_dir"]), _truncate(_ckpt(r) / "state.json"), _resume_args(r, fx["pairs"]))[2],
         "not valid JSON", [], ("run_dir", "pairs")),
    Case("resume-list-latest",
         lambda t, fx, mp: (r := _copy_run(t, fx["run_dir"]), (r / "latest.json").write_text("[]"), _resume_args(r, fx["pairs"]))[2],
         "expected a JSON object", [], ("run_dir", "pairs")),
    # item 12: nonsense that was accepted with exit 0
    Case("qc-evaluate-n-0", lambda t, fx, mp: ["qc", "evaluate", "--n", "0"], "--n must be >= 1"),
    Case("sim-reports-n-negative", lambda t, fx, mp: ["sim", "reports", "--n", "-5", "--out", t / "r.csv"], "--n must be >= 1", ["r.csv"]),
    Case("sim-reports-out-dir", lambda t, fx, mp: ["sim", "reports", "--n", "5", "--out", t], "is a folder"),
    Case("grounding-thresholds-out-of-range",
         lambda t, fx, mp: ["evaluate", "grounding", "--checkpoint", fx["run_dir"], "--dataset", "csv", "--data-dir", t,
                            "--out", t / "o" / "r.json", "--set", "thresholds=[2,-1]"],
         "between 0 and 1", ["o"], ("run_dir",)),
    Case("extract-out-equals-in",
         lambda t, fx, mp: ["extract", "--in", reports_csv(t / "r.csv", ["a"]), "--id-column", "uid", "--text-columns", "findings",
                            "--out", t / "." / "r.csv"],
         "is the input file"),
    Case("extract-out-is-a-folder",
         lambda t, fx, mp: ["extract", "--in", reports_csv(t / "r.csv", ["a"]), "--id-column", "uid", "--text-columns", "findings",
                            "--out", t],
         "is a folder"),
    Case("extract-duplicate-ids-strict",
         lambda t, fx, mp: ["extract", "--in", reports_csv(t / "r.csv", ["a", "b", "a"]), "--id-column", "uid",
                            "--text-columns", "findings", "--out", t / "l.csv", "--strict"],
         "row 3 repeats uid 'a'", ["l.csv"]),
    Case("extract-empty-id-strict",
         lambda t, fx, mp: ["extract", "--in", reports_csv(t / "r.csv", ["a", ""]), "--id-column", "uid",
                            "--text-columns", "findings", "--out", t / "l.csv", "--strict"],
         "row 2 has an empty 'uid'", ["l.csv"]),
    # item 13: no empty --out folders on invalid input
    Case("train-missing-data", lambda t, fx, mp: ["train", "-c", QUICK_TRAIN, "--data", t / "nope", "--out", t / "o"], "nope", ["o"]),
    Case("export-not-a-dataset", lambda t, fx, mp: ["export", t, "--out", t / "w"], "no manifest.json", ["w"]),
    Case("sim-benchmark-bad-format",
         lambda t, fx, mp: ["sim", "benchmark", "--out", t / "b", "--n", "4", "--format", "bogus"], "bogus", ["b"]),
    Case("sim-benchmark-n-0", lambda t, fx, mp: ["sim", "benchmark", "--out", t / "b", "--n", "0"], "--n must be >= 1", ["b"]),
    Case("build-bank-images-not-a-folder",
         lambda t, fx, mp: ["qc", "build-bank", "--images", t / "nope", "--out", t / "b.npz"], "not a folder", ["b.npz"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_exits_2_cleanly(case: Case, tmp_path, monkeypatch, request):
    fx = {name: request.getfixturevalue(name) for name in case.fixtures}
    work = tmp_path / "work"
    work.mkdir()
    args = case.setup(work, fx, monkeypatch)
    res = cli(*args)
    monkeypatch.undo()
    assert res.exit_code == 2, f"exit {res.exit_code}; output:\n{res.output}\n{res.exception!r}"
    assert "Traceback" not in res.output
    assert case.fragment.lower() in " ".join(res.output.split()).lower(), res.output
    assert leftovers(tmp_path) == []
    for rel in case.absent:
        assert not (work / rel).exists(), f"{rel} was left behind"


def test_resume_with_a_different_config_names_the_keys_in_one_line(run_dir, pairs, tmp_path):
    run = _copy_run(tmp_path, run_dir)
    before = (run / "config.yaml").read_bytes()
    res = cli(*_resume_args(run, pairs, "model.embed_dim=64", "objective.params.temperature=0.2"))
    assert res.exit_code == 2, res.output
    message = " ".join(res.output.split())
    assert "model.embed_dim (128 in the checkpoint, 64 now)" in message
    assert "objective.params.temperature (0.1 in the checkpoint, 0.2 now)" in message
    assert "size mismatch" not in message and len(message) < 500
    assert (run / "config.yaml").read_bytes() == before  # nothing of the run was rewritten


# ----------------------------------------------------------------------------- item 8: bombs

@pytest.mark.parametrize("side", [9_000, 40_000])  # above our limit (PIL warns) / above PIL's hard limit
def test_read_gray_refuses_a_bomb_before_decoding(side):
    from syncxr.imread import ImageReadError, read_gray

    with pytest.raises(ImageReadError) as e:
        read_gray(png_header_only(side, side), name="bomb.png")
    assert e.value.reason == "too_many_pixels" and "bomb.png" in str(e.value)


def test_build_bank_skips_a_bomb_counts_it_and_carries_on(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    noise_png(imgs / "a.png")
    noise_png(imgs / "c.png", seed=2)
    (imgs / "b.png").write_bytes(png_header_only(40_000, 40_000))
    res = cli("qc", "build-bank", "--images", imgs, "--out", tmp_path / "bank.npz")
    assert res.exit_code == 0, res.output
    assert "2 images (1 skipped: {'too_many_pixels': 1})" in " ".join(res.output.split())
    from syncxr.qc.bank import ProblemBank

    bank = ProblemBank.load(tmp_path / "bank.npz")
    assert bank.labels == ["a", "c"]
    assert json.loads((tmp_path / "bank.json").read_text())["skipped"] == {"too_many_pixels": 1}


def test_judge_records_a_bomb_without_sending_it(tmp_path):
    from syncxr.qc.judge import MLLMJudge

    (tmp_path / "b.png").write_bytes(png_header_only(40_000, 40_000))
    j = MLLMJudge("http://127.0.0.1:9/v1", "m")._judge_path(str(tmp_path / "b.png"))
    assert j.problematic is None and j.error.startswith("too_many_pixels:")


def test_csv_training_source_skips_a_bomb_with_a_counted_reason(tmp_path):
    from syncxr.data.sources.csv_pairs import CsvPairs

    noise_png(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(png_header_only(40_000, 40_000))
    (tmp_path / "pairs.csv").write_text("image,text\na.png,clear lungs\nb.png,effusion\n")
    src = CsvPairs(tmp_path / "pairs.csv")
    img, text = src[1]  # the bomb: skipped at read time, the next readable pair comes instead
    assert text == "clear lungs" and img.shape == (128, 128)
    assert src.skipped == {"too_many_pixels": 1}


# ----------------------------------------------------------------------------- item 9: 16-bit

def test_one_reader_16bit_png_is_windowed_not_clipped_everywhere(tmp_path):
    from syncxr.data.pairs import decode_image
    from syncxr.data.sources.base import load_gray_u8
    from syncxr.qc.bank import _load_gray
    from syncxr.qc.judge import MLLMJudge

    path = png16(tmp_path / "wide.png")
    seen = {}

    class Spy(MLLMJudge):
        def judge(self, image):
            seen["judge"] = image
            return False, ""

    Spy("http://127.0.0.1:9/v1", "m")._judge_path(str(path))
    arrays = {"train": decode_image(path), "eval": load_gray_u8(path), "bank": _load_gray(path), "judge": seen["judge"]}
    ref = arrays["train"]
    assert ref.dtype == np.uint8 and 120 <= ref.mean() <= 135  # a gradient, not 254.5 (clipped to white)
    assert ref.min() == 0 and ref.max() == 255
    for where, arr in arrays.items():
        np.testing.assert_array_equal(arr, ref, err_msg=where)


# ----------------------------------------------------------------------------- item 13: outputs

def test_build_bank_out_without_suffix_writes_and_prints_the_real_path(tmp_path):
    res = cli("qc", "build-bank", "--per-defect", "1", "--size", "128", "--out", tmp_path / "mybank")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mybank.npz").is_file() and (tmp_path / "mybank.json").is_file()
    assert str(tmp_path / "mybank.npz") in "".join(res.output.split())
    folder = tmp_path / "banks"
    folder.mkdir()
    res = cli("qc", "build-bank", "--per-defect", "1", "--size", "128", "--out", folder)
    assert res.exit_code == 0 and (folder / "bank.npz").is_file() and (folder / "bank.json").is_file()


def test_reexport_removes_stale_tars(dataset, tmp_path):
    out = tmp_path / "w"
    assert cli("export", dataset, "--out", out, "--samples-per-tar", "2").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [f"syncxr-00000{i}.tar" for i in range(3)]
    (out / "notes.txt").write_text("mine")
    assert cli("export", dataset, "--out", out, "--samples-per-tar", "10").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "syncxr-000000.tar"]
    names = tarfile.open(out / "syncxr-000000.tar").getnames()
    assert len(names) == 3 * 6


# ----------------------------------------------------------------------------- item 14: paths

def test_webdataset_member_names_are_sanitised(tmp_path):
    from syncxr.data.export import _write_tar, tar_key

    png = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png, format="PNG")
    rows = [{"sample_id": sid, "image_png": png.getvalue(), "report": "r", "entities": "[]", "seed": 1,
             **{k: None for k in __import__("syncxr.records", fromlist=["x"]).CHEXPERT14_SNAKE}}
            for sid in ("../../x", "/etc/passwd", "a.b", "ok-1_2")]
    _write_tar(tmp_path / "t.tar", rows, "report")
    names = tarfile.open(tmp_path / "t.tar").getnames()
    assert all("/" not in n and ".." not in n and n.count(".") == 1 for n in names), names
    assert tar_key("ok-1_2") == "ok-1_2" and tar_key("../../x") != tar_key("__x")
    meta = json.loads(tarfile.open(tmp_path / "t.tar").extractfile(f"{tar_key('../../x')}.json").read())
    assert meta["sample_id"] == "../../x"


def test_csv_image_paths_must_stay_inside_the_root(tmp_path):
    from syncxr.data.sources.csv_pairs import CsvPairs

    root = tmp_path / "root"
    root.mkdir()
    noise_png(root / "in.png")
    outside = noise_png(tmp_path / "out.png")
    (root / "p.csv").write_text(f"image,text\nin.png,a\n../out.png,b\n{outside},c\n/etc/passwd,d\n")
    src = CsvPairs(root / "p.csv")
    assert src.texts() == ["a"] and src.skipped["outside_root"] == 3
    allowed = CsvPairs(root / "p.csv", allow_outside_root=True)
    assert allowed.texts() == ["a", "b", "c", "d"]  # opted in: /etc/passwd is listed (and fails to decode later)
    assert allowed.skipped["outside_root"] == 0


def test_mimic_dicom_id_cannot_escape_the_root(tmp_path):
    from syncxr.data.sources.mimic import MimicCXR

    root = tmp_path / "mimic"
    study = root / "files" / "p10" / "p10000001"
    (study / "s50000001").mkdir(parents=True)
    (study / "s50000001.txt").write_text("FINDINGS: Clear lungs.\nIMPRESSION: Normal.\n")
    noise_png(study / "s50000001" / "good.jpg")
    noise_png(tmp_path / "secret.jpg")
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text(
        "dicom_id,subject_id,study_id,ViewPosition\ngood,10000001,50000001,PA\n../../../../../secret,10000001,50000001,PA\n")
    src = MimicCXR(root, split="all")
    assert len(src) == 1 and src.skipped["outside_root"] == 1
    assert len(MimicCXR(root, split="all", allow_outside_root=True)) == 2


# ----------------------------------------------------------------------------- the atomic writer

def test_atomic_writer_gives_umask_permissions_and_cleans_up_on_failure(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    p = fsio.write_text_atomic(tmp_path / "a.txt", "x")
    assert (p.stat().st_mode & 0o777) == 0o666 & ~mask  # what open() gives; mkstemp alone leaves 0600
    assert mask & 0o044 or (p.stat().st_mode & 0o777) != 0o600
    with pytest.raises(RuntimeError):
        with fsio.atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert (tmp_path / "a.txt").read_text() == "x" and leftovers(tmp_path) == []


def test_atomic_writer_turns_disk_full_into_a_user_error(tmp_path, monkeypatch):
    _no_space(monkeypatch, "fsync")
    with pytest.raises(UserError, match=r"b\.bin: cannot write \(No space left on device\); the disk is full"):
        fsio.write_bytes_atomic(tmp_path / "new" / "b.bin", b"123")
    monkeypatch.undo()
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_every_writer_goes_through_the_atomic_writer():
    """No module but syncxr.fsio makes its own temp files or renames files into place (the
    checkpoint renames a whole folder, which a file writer cannot do)."""
    src = ROOT / "src" / "syncxr"
    allowed = {"fsio.py", "train/checkpoint.py"}
    offenders = [
        str(p.relative_to(src)) for p in src.rglob("*.py")
        if str(p.relative_to(src)) not in allowed
        and any(s in p.read_text() for s in ("mkstemp", "NamedTemporaryFile", "os.replace(", "os.rename(", "tmp.replace("))
    ]
    assert offenders == []


def test_eval_labels_csv_refuses_images_outside_data_dir(tmp_path):
    from syncxr.data.sources.labels_csv import load_labels_csv

    root = tmp_path / "eval"
    root.mkdir()
    noise_png(root / "in.png")
    noise_png(tmp_path / "out.png")
    (root / "labels.csv").write_text("image,effusion\nin.png,1\n../out.png,0\n")
    with pytest.raises(UserError, match=r"1 image path\(s\) point outside .*'\.\./out\.png'.*allow_outside_root=true"):
        load_labels_csv(root)
    ds = load_labels_csv(root, allow_outside_root=True)
    assert list(ds.meta["image_id"]) == ["in.png", "../out.png"]


def test_cli_maps_filesystem_errors_to_exit_2_but_not_network_errors(monkeypatch):
    import syncxr.sim.corpus as corpus

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/reports.csv")

    monkeypatch.setattr(corpus, "write_reports_csv", disk_full)
    res = cli("sim", "reports", "--n", "3", "--out", "r.csv")
    assert res.exit_code == 2 and "/data/reports.csv: cannot complete the operation (No space left on device)" in res.output

    def refused(*a, **k):
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr(corpus, "write_reports_csv", refused)
    res = cli("sim", "reports", "--n", "3", "--out", "r.csv")
    assert res.exit_code == 1 and isinstance(res.exception, ConnectionRefusedError)


def test_extract_warns_about_duplicate_and_empty_ids_without_strict(tmp_path):
    src = reports_csv(tmp_path / "r.csv", ["a", "b", "a", "", "b"])
    res = cli("extract", "--in", src, "--id-column", "uid", "--text-columns", "findings", "--out", tmp_path / "l.csv")
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "2 row(s) with a duplicate 'uid' (rows [3, 5])" in out
    assert "1 row(s) with an empty 'uid' (rows [4])" in out
    assert (tmp_path / "l.csv").read_text().count("\n") == 6  # header + every row, nothing dropped


def _modules_using(needle: str) -> set[str]:
    src = ROOT / "src" / "syncxr"
    return {str(p.relative_to(src)) for p in src.rglob("*.py") if needle in p.read_text()}


def test_one_yaml_loader():
    """YAML from users goes through fsio.parse_yaml; text/grammar_writer.py reads its own bundled grammar."""
    assert _modules_using("yaml.safe_load(") - {"fsio.py", "text/grammar_writer.py"} == set()


def test_one_image_reader_for_user_images():
    """Image.open outside syncxr.imread only reads syncxr's own PNGs or an image header."""
    own_pngs_or_header = {"image/png.py", "report/plots.py", "data/export.py", "data/sources/base.py"}
    assert _modules_using("Image.open(") - {"imread.py"} - own_pngs_or_header == set()
