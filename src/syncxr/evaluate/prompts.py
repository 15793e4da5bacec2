"""Zero-shot prompt tables (data files under evaluate/prompts/) and their loader."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from syncxr.config import read_yaml, validate
from syncxr.errors import UserError

log = logging.getLogger(__name__)

PROMPT_DIR = Path(__file__).with_name("prompts")
DEFAULT_FILE = PROMPT_DIR / "findings.yaml"


class FindingPromptSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: list[str] = Field(default_factory=list)
    positive: list[str] = Field(default_factory=list)
    negative: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_prompts(self) -> "FindingPromptSpec":
        if not self.terms and not (self.positive and self.negative):
            raise ValueError("give `terms`, or both `positive` and `negative` prompt lists")
        return self


class Templates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positive: list[str] = Field(default_factory=lambda: ["{term}"], min_length=1)
    negative: list[str] = Field(default_factory=lambda: ["no {term}"], min_length=1)


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    templates: Optional[Templates] = None
    findings: dict[str, FindingPromptSpec] = Field(default_factory=dict)


@dataclass
class FindingPrompts:
    positive: list[str]
    negative: list[str]
    source: str  # the file it came from, or "template-fallback"


def _expand(spec: FindingPromptSpec, templates: Templates) -> tuple[list[str], list[str]]:
    if spec.positive and spec.negative:
        return list(spec.positive), list(spec.negative)
    pos = [t.format(term=term) for t in templates.positive for term in spec.terms]
    neg = [t.format(term=term) for t in templates.negative for term in spec.terms]
    return pos, neg


def _read(path: Path) -> PromptFile:
    return validate(PromptFile, read_yaml(path), str(path))


def load_prompt_table(dataset: str = "", path: str | Path | None = None) -> dict[str, FindingPrompts]:
    """The default table, overlaid by prompts/<dataset>.yaml if it exists, then by `path` if given."""
    base = _read(DEFAULT_FILE)
    templates = base.templates or Templates()
    table = {name: FindingPrompts(*_expand(s, templates), source=DEFAULT_FILE.name) for name, s in base.findings.items()}
    overlays = [PROMPT_DIR / f"{dataset}.yaml"] if dataset and (PROMPT_DIR / f"{dataset}.yaml").is_file() else []
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"prompt file not found: {path}. Give a YAML file laid out like {DEFAULT_FILE}.")
        overlays.append(Path(path))
    for p in overlays:
        f = _read(p)
        t = f.templates or templates
        for name, s in f.findings.items():
            table[name] = FindingPrompts(*_expand(s, t), source=p.name)
    return table


def prompts_for(findings: list[str], table: dict[str, FindingPrompts]) -> dict[str, FindingPrompts]:
    """Prompts for each finding; a finding missing from the table gets generic template prompts.

    The fallback is logged and marked (source="template-fallback") so results show it.
    """
    out = {}
    for name in findings:
        if name in table:
            out[name] = table[name]
            continue
        words = name.replace("_", " ")
        log.warning("no prompts for finding %r in the prompt table; using generic '%s' / 'no %s'", name, words, words)
        out[name] = FindingPrompts([words, f"there is {words}"], [f"no {words}", f"there is no {words}"], "template-fallback")
    return out
