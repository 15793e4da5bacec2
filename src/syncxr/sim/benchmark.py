"""Simulated evaluation benchmarks, written in the official file formats.

`write_sim_benchmark(out_dir, n, size, seed, fmt)` renders `n` labelled phantom radiographs with
per-finding masks and writes them as one of:

- "csv": generic labels CSV + `masks/<finding>/<id>.png` + `boxes.csv` (read by the `sim` loader)
- "chexpert": `CheXpert-v1.0-small/valid.csv` + JPEGs (the `chexpert`/`chexpert5x200` loaders)
- "rsna": `stage_2_train_labels.csv` with boxes of the consolidation masks in the 1024 frame of
  the original challenge (images are `size`x`size`; EvalDataset.boxes(i, image_shape) rescales)
- "siim": `train-rle.csv` with one relative-RLE row per pneumothorax region

Design: findings cycle so each is the primary finding of the same number of images (+-1), one
slot in K+1 is a normal image, and a second finding is added with probability `p_second`
(uniform over the others), so positives stay balanced and co-occurrence exists. Everything is a
function of `seed`: the same call writes byte-identical files.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from syncxr.data import rle
from syncxr.errors import UserError
from syncxr.records import CHEXPERT14, derive_seed, snake

log = logging.getLogger(__name__)

DEFAULT_FINDINGS = ("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion", "pneumothorax")
FORMATS = {"csv": "sim", "chexpert": "chexpert", "rsna": "rsna", "siim": "siim"}
SPLITS = (("train", 0.7), ("val", 0.1), ("test", 0.2))
# Phantom finding -> CheXpert-14 column (for the "chexpert" format).
TO_CHEXPERT = {
    "nodule": "lung_lesion", "mass": "lung_lesion", "granuloma": "lung_lesion", "opacity": "lung_opacity",
    "et_tube": "support_devices", "central_line": "support_devices", "pacemaker": "support_devices",
    "ng_tube": "support_devices", "chest_tube": "support_devices", "sternotomy": "support_devices",
    "pleural_thickening": "pleural_other",
    # phantom-v2 findings
    "cavitary_lesion": "lung_lesion", "metastases": "lung_lesion", "hydropneumothorax": "pneumothorax",
    "congestion": "edema", "kerley_lines": "edema", "interstitial_edema": "edema", "heart_failure": "edema",
    "ards": "lung_opacity", "reticular": "lung_opacity", "clavicle_fracture": "fracture",
    "compression_fracture": "fracture", "pleural_plaque": "pleural_other", "tracheostomy_tube": "support_devices",
    "picc_line": "support_devices", "port_catheter": "support_devices", "swan_ganz_catheter": "support_devices",
    "surgical_clips": "support_devices", "prosthetic_valve": "support_devices",
}
# CheXpert's Lung Opacity is the parent of these labels.
OPACITY_CHILDREN = {"consolidation", "atelectasis", "edema", "lung_lesion", "pneumonia", "lung_opacity"}
RSNA_FRAME = 1024
Renderer = Callable[[list[Any], int, int], Any]  # (specs, seed, size) -> GeneratedImage


@dataclass(frozen=True)
class SimCase:
    image_id: str
    patient_id: str
    findings: tuple[str, ...]  # empty = normal
    seed: int
    split: str


def plan_cases(n: int, findings: Sequence[str], seed: int, p_second: float = 0.3) -> list[SimCase]:
    """The labelled design of a benchmark (see the module docstring); no rendering."""
    if n < 1 or not findings:
        raise UserError(f"sim benchmark: need n >= 1 and at least one finding, got n={n}, findings={list(findings)}")
    k = len(findings)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    cuts = np.round(np.cumsum([f for _, f in SPLITS])[:-1] * n).astype(int)
    split_of = np.empty(n, dtype=object)
    for (name, _), part in zip(SPLITS, np.split(order, cuts)):
        split_of[part] = name
    cases = []
    for i in range(n):
        slot = i % (k + 1)
        chosen: tuple[str, ...] = ()
        if slot < k:
            chosen = (findings[slot],)
            if k > 1 and rng.random() < p_second:
                chosen += (findings[(slot + 1 + int(rng.integers(k - 1))) % k],)
        image_id = f"sim{i:05d}"
        cases.append(SimCase(image_id, f"p{i:05d}", chosen, derive_seed(seed, image_id, "sim_benchmark"),
                             str(split_of[i])))
    return cases


def _render(case: SimCase, size: int, renderer: Renderer, spec_cls: type) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    out = renderer([spec_cls(name) for name in case.findings], case.seed, size)
    image = np.asarray(out.image)
    if image.dtype != np.uint8 or image.shape != (size, size):
        raise RuntimeError(f"renderer returned {image.dtype} {image.shape}; expected uint8 ({size}, {size})")
    masks = {name: np.asarray(m, dtype=bool) for name, m in out.masks.items() if name in case.findings}
    return image, masks


def mask_boxes(mask: np.ndarray, min_pixels: int = 4) -> list[tuple[float, float, float, float]]:
    """(x, y, w, h) of each connected region of a bool mask with at least min_pixels pixels."""
    lab, n = ndimage.label(mask)
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is not None and (lab[sl] == k).sum() >= min_pixels:
            out.append((float(sl[1].start), float(sl[0].start),
                        float(sl[1].stop - sl[1].start), float(sl[0].stop - sl[0].start)))
    return out


def _save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")


def _write_rows(path: Path, header: Sequence[str], rows: list[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


# ----------------------------------------------------------------------------- formats


def _write_csv(out: Path, cases: list[SimCase], findings: Sequence[str], rendered: Any) -> None:
    rows, box_rows = [], []
    for case, (image, masks) in zip(cases, rendered):
        _save_png(out / "images" / f"{case.image_id}.png", image)
        rows.append([f"images/{case.image_id}.png", "PA", case.patient_id, case.split,
                     *[1 if f in case.findings else 0 for f in findings]])
        for name, m in sorted(masks.items()):
            _save_png(out / "masks" / name / f"{case.image_id}.png", m.astype(np.uint8) * 255)
            box_rows += [[f"images/{case.image_id}.png", name, *b] for b in mask_boxes(m)]
    _write_rows(out / "labels.csv", ["image", "view", "patient_id", "split", *findings], rows)
    _write_rows(out / "boxes.csv", ["image", "finding", "x", "y", "w", "h"], box_rows)


def chexpert_row(findings: Sequence[str]) -> dict[str, str]:
    """CheXpert-14 label strings ("1.0"/"0.0") of an image with these phantom findings."""
    pos = {TO_CHEXPERT.get(f, f) for f in findings}
    if pos & OPACITY_CHILDREN:
        pos.add("lung_opacity")
    if not pos:
        pos.add("no_finding")
    return {c: "1.0" if snake(c) in pos else "0.0" for c in CHEXPERT14}


def _write_chexpert(out: Path, cases: list[SimCase], rendered: Any, seed: int) -> None:
    root, rows = "CheXpert-v1.0-small", []
    rng = np.random.default_rng(seed)
    order = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
             "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
             "Fracture", "Support Devices"]  # the column order of the official CSVs
    for i, (case, (image, _)) in enumerate(zip(cases, rendered)):
        rel = f"{root}/valid/patient{70000 + i}/study1/view1_frontal.jpg"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(out / rel, format="JPEG", quality=95)
        lab = chexpert_row(case.findings)
        rows.append([rel, str(rng.choice(["Male", "Female"])), int(rng.integers(20, 90)), "Frontal", "PA",
                     *[lab[c] for c in order]])
    _write_rows(out / root / "valid.csv", ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *order], rows)


def _write_rsna(out: Path, cases: list[SimCase], rendered: Any, target: str, size: int) -> None:
    rows, info = [], []
    scale = RSNA_FRAME / size
    for case, (image, masks) in zip(cases, rendered):
        pid = f"{case.seed:016x}"[:8] + "-" + case.image_id
        _save_png(out / "stage_2_train_images" / f"{pid}.png", image)
        boxes = mask_boxes(masks[target]) if target in masks else []
        if target in case.findings and not boxes:
            log.warning("sim rsna: %s has %s but an empty mask; written as Target=0", case.image_id, target)
        if boxes:
            rows += [[pid, x * scale, y * scale, w * scale, h * scale, 1] for x, y, w, h in boxes]
            info.append([pid, "Lung Opacity"])
        else:
            rows.append([pid, "", "", "", "", 0])
            info.append([pid, "No Lung Opacity / Not Normal" if case.findings else "Normal"])
    _write_rows(out / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], rows)
    _write_rows(out / "stage_2_detailed_class_info.csv", ["patientId", "class"], info)


def _write_siim(out: Path, cases: list[SimCase], rendered: Any, target: str) -> None:
    lines = ["ImageId, EncodedPixels"]  # the original header, stray space included
    for case, (image, masks) in zip(cases, rendered):
        iid = f"1.2.276.0.7230010.3.1.4.{case.seed % 10**9}.{case.image_id[3:]}"
        _save_png(out / "images" / f"{iid}.png", image)
        regions, n = ndimage.label(masks.get(target, np.zeros(image.shape, dtype=bool)))
        codes = [rle.encode(regions == k) for k in range(1, n + 1)] or [rle.EMPTY]
        lines += [f"{iid}, {code}" for code in codes]
    (out / "train-rle.csv").write_text("\n".join(lines) + "\n")


def write_sim_benchmark(
    out_dir: str | Path,
    n: int = 70,
    size: int = 128,
    seed: int = 0,
    fmt: str = "csv",
    findings: Sequence[str] = DEFAULT_FINDINGS,
    p_second: float = 0.3,
    renderer: Renderer | None = None,
    overwrite: bool = False,
) -> Path:
    """Render and write a simulated benchmark; returns out_dir. See the module docstring.

    rsna labels the "consolidation" masks (the challenge's pneumonia opacities), siim the
    "pneumothorax" masks; both need that finding in `findings`.
    """
    if fmt not in FORMATS:
        raise UserError(f"sim benchmark: fmt={fmt!r}; expected one of {sorted(FORMATS)}")
    target = {"rsna": "consolidation", "siim": "pneumothorax"}.get(fmt)
    if target is not None and target not in findings:
        raise UserError(f"sim benchmark: fmt={fmt!r} needs {target!r} in findings, got {list(findings)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} is not empty; choose an empty folder or pass overwrite=True")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    cases = plan_cases(n, findings, seed, p_second)
    from syncxr.image.phantom import FindingSpec, render_phantom

    render = renderer or render_phantom
    rendered = (_render(c, size, render, FindingSpec) for c in cases)  # lazy: one image in memory at a time
    if fmt == "csv":
        _write_csv(out, cases, findings, rendered)
    elif fmt == "chexpert":
        _write_chexpert(out, cases, rendered, seed)
    elif fmt == "rsna":
        _write_rsna(out, cases, rendered, target, size)
    else:
        _write_siim(out, cases, rendered, target)
    manifest = {"fmt": fmt, "loader": FORMATS[fmt], "n": n, "size": size, "seed": seed,
                "findings": list(findings), "p_second": p_second}
    (out / "sim.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log.info("wrote %d-image simulated %s benchmark to %s", n, fmt, out)
    return out
