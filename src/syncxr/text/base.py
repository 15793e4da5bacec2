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
    """Writes FINDINGS and IMPRESSION for a sampled entity set.

    `adds_filler`: the writer states normal findings beyond the sampled entities (so it cannot be
    verified in "exact" mode). `uses_feedback`: on a rewrite the writer reads `feedback`, the
    verifier's complaint about the previous attempt. A failure of one sample is raised as a
    `syncxr.errors.SampleError` (its `reason` becomes the reject reason); a failure of the machinery
    as `syncxr.errors.InfrastructureError` (the shard fails and is redone on rerun).
    """

    backend_id: str
    adds_filler: bool
    uses_feedback: bool

    def write(self, entities: list[Entity], seed: int, attempt: int = 0, feedback: str = "") -> tuple[str, str]:
        """(findings, impression) for a sampled entity set; `attempt` > 0 on a rewrite."""
        ...


# One line per backend: name -> "module:factory" (imported only when chosen).
EXTRACTORS: Registry[Extractor] = Registry(
    "extractor",
    {
        "lexicon": "syncxr.text.extract:LexiconExtractor",
        "rate-ner": "syncxr.text.rate_ner:RateNerExtractor",
    },
)
WRITERS: Registry[ReportWriter] = Registry(
    "report writer",
    {
        "grammar": "syncxr.text.write:GrammarWriter",
        "llm": "syncxr.text.llm:build_llm_writer",
    },
)
