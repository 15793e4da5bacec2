"""Checkpoints written before `trained_heads`: whether their local head was trained comes from a
fixed table of the objectives of that time; it must agree with those objectives' `uses_local`."""

import pytest

from syncxr.models.pretrained import local_head_trained
from syncxr.objectives import OBJECTIVES


@pytest.mark.parametrize("name", ["convirt", "gloria", "mgca"])
def test_legacy_table_agrees_with_the_objective(name):
    legacy = {"config": {"objective": {"name": name}}}
    assert local_head_trained(legacy) is bool(OBJECTIVES.get(name).uses_local)
    assert local_head_trained({**legacy, "trained_heads": {"global": True, "local": False}}) is False


def test_unknown_objective_has_no_trained_local_head():
    assert local_head_trained({"config": {"objective": {"name": "not-an-objective"}}}) is False
