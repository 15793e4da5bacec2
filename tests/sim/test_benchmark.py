"""The simulated benchmark writer: design balance, every format read back by its loader."""

from __future__ import annotations

import numpy as np
import pytest

from syncxr.data.sources.registry import load_dataset
from syncxr.errors import UserError
from syncxr.sim.benchmark import DEFAULT_FINDINGS, chexpert_row, mask_boxes, plan_cases, write_sim_benchmark

N, SIZE = 14, 128  # two full cycles of 6 findings + normal


@pytest.fixture(scope="module")
def sim_csv(tmp_path_factory):
    return write_sim_benchmark(tmp_path_factory.mktemp("simcsv"), n=N, size=SIZE, seed=3, fmt="csv")


def test_plan_is_balanced_seeded_and_split():
    cases = plan_cases(700, DEFAULT_FINDINGS, seed=0, p_second=0.3)
    primary = [c.findings[0] for c in cases if c.findings]
    counts = {f: primary.count(f) for f in DEFAULT_FINDINGS}
    assert set(counts.values()) == {100} and sum(not c.findings for c in cases) == 100
    positives = {f: sum(f in c.findings for c in cases) for f in DEFAULT_FINDINGS}
    assert max(positives.values()) - min(positives.values()) < 40  # ~135 each
    assert any(len(c.findings) == 2 and c.findings[0] != c.findings[1] for c in cases)
    assert all(len(set(c.findings)) == len(c.findings) for c in cases)
    assert plan_cases(700, DEFAULT_FINDINGS, seed=0) == cases
    assert plan_cases(700, DEFAULT_FINDINGS, seed=1) != cases
    splits = [c.split for c in cases]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (490, 70, 140)


def test_sim_loader_reads_labels_masks_and_boxes(sim_csv):
    ds = load_dataset("sim", sim_csv)
    assert len(ds) == N and ds.findings == list(DEFAULT_FINDINGS)
    assert ((ds.labels == 0) | (ds.labels == 1)).all()
    assert (ds.labels.sum(0) >= 2).all()  # every finding present at least twice
    assert (ds.labels.sum(1) == 0).sum() == 2  # the normal slot of each cycle
    for i in range(len(ds)):
        img = ds.image(i)
        assert img.shape == (SIZE, SIZE)
        for j, f in enumerate(ds.findings):
            m = ds.mask(i, f)
            assert m.shape == (SIZE, SIZE)
            assert m.any() == bool(ds.labels[i, j]), (i, f)  # a positive has a mask, a negative none
    boxed = {b[0] for i in range(len(ds)) for b in ds.boxes(i)}
    assert boxed == set(DEFAULT_FINDINGS)
    # every box lies inside its finding's mask's bounding region
    i = int(np.flatnonzero(ds.labels[:, ds.findings.index("cardiomegaly")])[0])
    m = ds.mask(i, "cardiomegaly")
    for f, x, y, w, h in ds.boxes(i):
        if f == "cardiomegaly":
            assert m[int(y):int(y + h), int(x):int(x + w)].any()


def test_same_seed_gives_identical_files(sim_csv, tmp_path):
    again = write_sim_benchmark(tmp_path / "again", n=N, size=SIZE, seed=3, fmt="csv")
    for rel in ("labels.csv", "boxes.csv", "images/sim00003.png"):
        assert (again / rel).read_bytes() == (sim_csv / rel).read_bytes()
    other = write_sim_benchmark(tmp_path / "other", n=N, size=SIZE, seed=4, fmt="csv")
    assert (other / "images/sim00003.png").read_bytes() != (sim_csv / "images/sim00003.png").read_bytes()


def test_chexpert_format_reads_back_and_supports_5x200(tmp_path):
    out = write_sim_benchmark(tmp_path / "cx", n=N, size=SIZE, seed=1, fmt="chexpert")
    ds = load_dataset("chexpert", out)
    plan = plan_cases(N, DEFAULT_FINDINGS, seed=1)
    assert len(ds) == N and not np.isnan(ds.labels).any()
    col = {f: j for j, f in enumerate(ds.findings)}
    for i, case in enumerate(plan):
        for f in DEFAULT_FINDINGS:
            assert ds.labels[i, col[f]] == (f in case.findings)
        assert ds.labels[i, col["no_finding"]] == (not case.findings)
    five = load_dataset("chexpert5x200", out, split="valid", n_per_class=1, seed=0)
    assert len(five) == 5 and sorted(five.targets.tolist()) == [0, 1, 2, 3, 4]


def test_chexpert_row_hierarchy():
    row = chexpert_row(["edema", "nodule"])
    assert row["Edema"] == row["Lung Opacity"] == row["Lung Lesion"] == "1.0"
    assert row["No Finding"] == "0.0"
    assert chexpert_row([])["No Finding"] == "1.0"


def test_rsna_format_boxes_in_1024_frame(tmp_path):
    out = write_sim_benchmark(tmp_path / "rsna", n=N, size=SIZE, seed=2, fmt="rsna")
    ds = load_dataset("rsna", out)
    plan = plan_cases(N, DEFAULT_FINDINGS, seed=2)
    expected = [float("consolidation" in c.findings) for c in plan]
    assert ds.labels[:, 0].tolist() == expected
    i = expected.index(1.0)
    raw = ds.boxes(i)
    scaled = ds.boxes(i, image_shape=(SIZE, SIZE))
    assert raw and all(b[3] <= 1024 and b[1] + b[3] <= 1024.001 for b in raw)
    assert scaled[0][1] == pytest.approx(raw[0][1] * SIZE / 1024)


def test_siim_format_masks_round_trip(tmp_path):
    out = write_sim_benchmark(tmp_path / "siim", n=N, size=SIZE, seed=5, fmt="siim")
    ds = load_dataset("siim", out)
    plan = plan_cases(N, DEFAULT_FINDINGS, seed=5)
    assert ds.labels[:, 0].tolist() == [float("pneumothorax" in c.findings) for c in plan]
    from syncxr.image.phantom import FindingSpec, render_phantom

    i = int(np.flatnonzero(ds.labels[:, 0])[0])
    truth = render_phantom([FindingSpec(n) for n in plan[i].findings], plan[i].seed, SIZE).masks["pneumothorax"]
    np.testing.assert_array_equal(ds.mask(i, "pneumothorax"), truth)
    assert "ImageId, EncodedPixels" == (out / "train-rle.csv").read_text().splitlines()[0]


def test_mask_boxes_and_bad_arguments(tmp_path):
    m = np.zeros((10, 10), bool)
    m[1:3, 2:6] = True
    m[7:9, 7:9] = True  # 4 pixels
    assert mask_boxes(m) == [(2.0, 1.0, 4.0, 2.0), (7.0, 7.0, 2.0, 2.0)]
    assert mask_boxes(m, min_pixels=5) == [(2.0, 1.0, 4.0, 2.0)]
    with pytest.raises(UserError, match="fmt="):
        write_sim_benchmark(tmp_path / "x", n=2, fmt="dicom")
    with pytest.raises(UserError, match="needs 'pneumothorax'"):
        write_sim_benchmark(tmp_path / "x", n=2, fmt="siim", findings=["edema"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        write_sim_benchmark(tmp_path / "full", n=2)
    with pytest.raises(UserError, match="reads 'csv'"):
        write_sim_benchmark(tmp_path / "r", n=2, size=SIZE, fmt="rsna")
        load_dataset("sim", tmp_path / "r")


def test_chexpert_row_of_new_phantom_findings() -> None:
    row = chexpert_row(["hydropneumothorax", "picc_line"])
    assert row["Pneumothorax"] == "1.0" and row["Support Devices"] == "1.0" and row["No Finding"] == "0.0"
    assert chexpert_row(["scoliosis"])["No Finding"] == "0.0"  # an abnormal film is not "No Finding"
    assert chexpert_row([])["No Finding"] == "1.0"
