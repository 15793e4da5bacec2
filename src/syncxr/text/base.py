"""Protocols of the text backends. Prompt formatting/parsing belongs to the stage or writer;
transport (HTTP, vLLM, in-process transformers) belongs to the backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from syncxr.records import Entity
from syncxr.registry import Registry


@runtime_checkable
class Extractor(Protocol):
    backend_id: str

    def extract(self, text: str, section: str = "") -> list[Entity]:
        """Typed entities (with spans relative to `text` and attributes) found in one text."""
        ...


@runtime_checkable
class ReportWriter(Protocol):
    backend_id: str

    def write(self, entities: list[Entity], seed: int, attempt: int = 0) -> tuple[str, str]:
        """(findings, impression) for a sampled entity set; `attempt` > 0 on a rewrite."""
        ...


EXTRACTORS: Registry[Extractor] = Registry("extractor")
WRITERS: Registry[ReportWriter] = Registry("report writer")
