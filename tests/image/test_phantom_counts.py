"""Phantom: a countable finding's mask holds as many separate lesions as its count says
(1 for single, 2 for two, 3..6 for multiple), counted as connected components."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from syncxr.image.phantom.generator import PhantomGenerator, entities_to_specs
from syncxr.image.phantom.render import VERSION, render_phantom
from syncxr.image.phantom.spec import MULTIPLE, FindingSpec
from syncxr.records import PRESENT, Entity
from syncxr.vocab import load_ontology

ONTO = load_ontology()
EXPECTED = {"single": (1, 1), "two": (2, 2), "multiple": MULTIPLE}


def _components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask)[1])


@pytest.mark.parametrize("concept", [c for c in ONTO.concepts if "count" in c.attributes], ids=lambda c: c.name)
def test_each_count_draws_that_many_components(concept):
    sides = [None, "left", "bilateral"] if "laterality" in concept.attributes else [None]
    for count in concept.allowed("count"):
        lo, hi = EXPECTED[count]
        for side in sides:
            if side == "bilateral" and count == "single":
                continue
            for seed in range(3):
                e = Entity(concept.name, concept.type, PRESENT, {"count": count, **({"laterality": side} if side else {})})
                (spec,) = entities_to_specs([e], ONTO)
                assert spec.count == count
                n = _components(render_phantom([spec], seed=seed, size=256).masks[concept.name])
                assert lo <= n <= hi, (concept.name, count, side, seed, n)


def test_bilateral_count_puts_lesions_on_both_sides():
    img = render_phantom([FindingSpec("nodule", "bilateral", None, "upper", "nodule", "two")], seed=5, size=256)
    labels, n = ndimage.label(img.masks["nodule"])
    assert n == 2
    xs = [np.nonzero(labels == k)[1].mean() for k in (1, 2)]
    assert min(xs) < 128 < max(xs)  # one lesion in each half of the image


def test_multiple_varies_within_its_range_and_is_deterministic():
    spec = FindingSpec("nodule", "right", None, "middle", "nodule", "multiple")
    counts = {_components(render_phantom([spec], seed=s, size=256).masks["nodule"]) for s in range(8)}
    assert counts <= set(range(MULTIPLE[0], MULTIPLE[1] + 1)) and len(counts) > 1
    a, b = render_phantom([spec], seed=11, size=256), render_phantom([spec], seed=11, size=256)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks["nodule"], b.masks["nodule"])


def test_report_text_drives_the_count():
    gen = PhantomGenerator(size=256)
    assert VERSION == "phantom-v9"
    for text, expected in [("Two nodules in the right upper lobe.", 2), ("A single nodule.", 1),
                           ("Two left rib fractures.", 2)]:
        img = gen.generate(text, seed=2)
        (name,) = img.masks
        assert _components(img.masks[name]) == expected, text
    many = gen.generate("Multiple bilateral pulmonary nodules.", seed=2)
    assert MULTIPLE[0] <= _components(many.masks["nodule"]) <= MULTIPLE[1]


def test_bad_count_is_a_clear_error():
    from syncxr.errors import UserError

    with pytest.raises(UserError, match="count='three'"):
        FindingSpec("nodule", count="three").validated()
