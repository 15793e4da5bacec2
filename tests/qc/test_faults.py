"""Acquisition faults injected into drawn films (syncxr.qc.faults)."""

from __future__ import annotations

import numpy as np
import pytest

from syncxr.errors import UserError
from syncxr.image.base import GeneratedImage, GenerateOneByOne, ImageRequest
from syncxr.qc.faults import FaultyGenerator


class Flat(GenerateOneByOne):
    backend_id = "flat"

    def generate(self, impression, seed, attempt=0):
        image = np.full((64, 64), 100, np.uint8)
        image[16:48, 16:48] = 180
        return GeneratedImage(image, {"nodule": image > 150}, {"prompt_tokens": 3.0})


def test_rate_is_met_and_faults_are_recorded_and_reproducible():
    gen = FaultyGenerator(Flat(), rate=0.2)
    requests = [ImageRequest("x", seed, 0) for seed in range(2000)]
    out = gen.generate_batch(requests)
    is_spoiled = [any(k.startswith("defect_") for k in o.meta) for o in out]
    spoiled = [o for o, bad in zip(out, is_spoiled) if bad]
    assert 0.17 < len(spoiled) / 2000 < 0.23
    assert all(o.meta["prompt_tokens"] == 3.0 for o in out)  # the inner meta is kept
    clean = out[is_spoiled.index(False)]
    assert (clean.image == Flat().generate("x", 0).image).all()
    assert all(not (o.image == clean.image).all() for o in spoiled)  # every recorded fault changed the film
    again = gen.generate_batch(requests[:50])
    assert all((a.image == b.image).all() and a.meta == b.meta for a, b in zip(out, again))
    single = gen.generate("x", requests[7].seed)
    assert (single.image == out[7].image).all()  # batch or not, same bytes
    kinds = {k for o in spoiled for k in o.meta if k.startswith("defect_")}
    assert len(kinds) >= 6  # every defect kind occurs


def test_a_redraw_is_a_fresh_chance_and_rate_zero_or_one():
    gen = FaultyGenerator(Flat(), rate=0.5)
    first = [gen.fault(s, 0) for s in range(400)]
    second = [gen.fault(s, 1) for s in range(400)]
    assert first != second
    assert all(FaultyGenerator(Flat(), 0.0).fault(s, 0) is None for s in range(100))
    assert all(FaultyGenerator(Flat(), 1.0, ["rotated"]).fault(s, 0) == "rotated" for s in range(100))


@pytest.mark.parametrize("kwargs, match", [({"rate": 1.5}, r"defect_rate must be in \[0, 1\]"),
                                           ({"rate": 0.1, "defects": ["blurry"]}, "unknown defect.*blurry")])
def test_bad_options_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        FaultyGenerator(Flat(), **kwargs)
