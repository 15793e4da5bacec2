"""Image-report consistency measures of the dataset card (report/consistency.py)."""

from __future__ import annotations

import json

import numpy as np

from syncxr.image.png import encode_bilevel_png, encode_gray_png
from syncxr.report.consistency import Consistency, midline_of, on_side, ring_contrast, visible
from syncxr.vocab import load_ontology


def _row(entities: list[dict], masks: dict[str, np.ndarray], image: np.ndarray) -> tuple[str, list[dict], bytes]:
    return json.dumps(entities), [{"name": k, "png": encode_bilevel_png(v)} for k, v in masks.items()], encode_gray_png(image)


def test_ring_contrast_and_visibility() -> None:
    img = np.full((64, 64), 100, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[20:30, 20:30] = True
    assert ring_contrast(img, mask) == (0.0, 0.0) and not visible(img, mask)
    img[mask] = 110
    diff, std = ring_contrast(img, mask)
    assert diff == 10.0 and std == 0.0 and visible(img, mask)


def test_sides_follow_the_pa_convention() -> None:
    m = np.zeros((10, 10), bool)
    m[:, :3] = True  # image left = patient right
    assert on_side(m, "right") and not on_side(m, "left") and not on_side(m, "bilateral")
    m[:, 8:] = True
    assert on_side(m, "bilateral")


def test_sides_are_judged_against_the_patients_midline() -> None:
    m = np.zeros((10, 100), bool)
    m[:, 44:60] = True  # a medial right-sided line on a patient whose midline is at 60% of the width
    assert not on_side(m, "right") and on_side(m, "left")  # against the image's middle: wrong
    assert on_side(m, "right", midline=0.6) and not on_side(m, "left", midline=0.6)
    assert midline_of(json.dumps({"patient_midline_x": 0.6, "bank_max_sim": 0.2})) == 0.6
    assert midline_of(None) == midline_of("{}") == midline_of('{"patient_midline_x": 7}') == 0.5


def test_the_phantom_records_where_the_patients_midline_lands() -> None:
    from syncxr.image.phantom import FindingSpec, render_phantom

    mids = [render_phantom([FindingSpec("central_line", "right")], seed=s, size=128).meta["patient_midline_x"] for s in range(20)]
    assert all(0.3 < x < 0.7 for x in mids) and np.std(mids) > 0.01  # films are not all centred
    for s in range(20):
        out = render_phantom([FindingSpec("pneumothorax", "left", "severe")], seed=s, size=128)
        assert on_side(out.masks["pneumothorax"], "left", out.meta["patient_midline_x"])


def test_counts_linked_visible_and_sided_entities() -> None:
    c = Consistency(load_ontology())
    img = np.full((64, 64), 80, np.uint8)
    eff = np.zeros((64, 64), bool)
    eff[40:60, 2:20] = True  # image left = patient right
    img[eff] = 160
    ents = [{"name": "pleural_effusion", "type": "DISEASE", "assertion": "present", "attributes": {"laterality": "right"}},
            {"name": "kyphosis", "type": "ABNORMALITY", "assertion": "present", "attributes": {}},
            {"name": "pneumothorax", "type": "NON-DISEASE", "assertion": "absent", "attributes": {}},
            {"name": "mediastinal_shift", "type": "ABNORMALITY", "assertion": "present", "attributes": {"laterality": "bilateral"}}]
    c.add(*_row(ents, {"pleural_effusion": eff, "mediastinal_shift": eff}, img))
    s = c.summary()
    assert s["asserted_abnormal_entities"] == 3 and abs(s["with_mask"] - 2 / 3) < 1e-9
    assert s["masks_visible"] == 1.0 and s["sided_correct"] == 1.0 and s["implausible_sides_sampled"] == 1
    assert dict((n, share) for n, _, share in c.per_concept())["kyphosis"] == 0.0


def test_contradictions_are_counted_from_extracted_entities() -> None:
    c = Consistency(load_ontology())
    img = np.zeros((32, 32), np.uint8)
    clash = json.dumps([{"name": "cardiomegaly", "type": "ABNORMALITY"}, {"name": "normal_heart_size", "type": "NON-ABNORMALITY"}])
    fine = json.dumps([{"name": "cardiomegaly", "type": "ABNORMALITY"}, {"name": "pleural_effusion", "type": "NON-DISEASE"}])
    assert c.contradictions(clash) == [("cardiomegaly|ABNORMALITY", "normal_heart_size|NON-ABNORMALITY")]
    c.add(*_row([], {}, img), clash)
    c.add(*_row([], {}, img), fine)
    assert c.summary()["contradictory_reports"] == 1
