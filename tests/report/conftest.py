"""Fixtures of the report tests: a small finished study (study_fixture.build_study)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from study_fixture import build_study


@pytest.fixture(scope="session")
def fake_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("fake-study") / "study"
    out.mkdir()
    return out, build_study(out)
