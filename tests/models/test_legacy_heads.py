"""Checkpoints written before `trained_heads`: whether their local head was trained is asked of
the objectives registry (`uses_local`); a recorded `trained_heads.local` always wins."""

import pytest

from syncxr.objectives.registry import local_head_trained
from syncxr.objectives import OBJECTIVES


@pytest.mark.parametrize("name", ["convirt", "gloria", "mgca"])
def test_legacy_table_agrees_with_the_objective(name):
    legacy = {"config": {"objective": {"name": name}}}
    assert local_head_trained(legacy) is bool(OBJECTIVES.get(name).uses_local)
    assert local_head_trained({**legacy, "trained_heads": {"global": True, "local": False}}) is False


def test_unknown_objective_has_no_trained_local_head():
    assert local_head_trained({"config": {"objective": {"name": "not-an-objective"}}}) is False
