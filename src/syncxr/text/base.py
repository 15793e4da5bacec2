"""Protocols of the text backends. Prompt formatting/parsing belongs to the stage or writer;
transport (HTTP, vLLM, in-process transformers) belongs to the backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, Union, runtime_checkable

from syncxr.errors import each_or_error
from syncxr.records import Entity
from syncxr.registry import Registry


@runtime_checkable
class Extractor(Protocol):
    """Reads typed entities from text. `extract_batch` is what the pipeline calls (a model
    backend tags many sentences per forward pass); its result for a text never depends on the
    other texts of the batch."""

    backend_id: str

    def extract(self, text: str, section: str = "") -> list[Entity]:
        """Typed entities (with spans relative to `text` and attributes) found in one text."""
        ...

    def extract_batch(self, texts: list[str], sections: list[str] | None = None) -> list[list[Entity]]:
        """`extract` of each text, in order."""
        ...


class ExtractOneByOne:
    """`extract_batch` for extractors with no batched path: one `extract` per text."""

    def extract_batch(self, texts: list[str], sections: list[str] | None = None) -> list[list[Entity]]:
        sections = sections or [""] * len(texts)
        return [self.extract(t, s) for t, s in zip(texts, sections)]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class WriteRequest:
    """One report to write: the sampled entities, the sample's write seed, the attempt number
    (0 first) and, on a rewrite, the verifier's complaint about the previous attempt."""

    entities: list[Entity]
    seed: int
    attempt: int = 0
    feedback: str = ""


# A written report (findings, impression), or the exception that failed that one sample.
WriteResult = Union[tuple[str, str], Exception]


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

    def write_batch(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        """One result per request, in order: (findings, impression), or the exception that failed
        that sample. An `InfrastructureError` is raised, not returned (it fails the shard)."""
        ...


class WriteOneByOne:
    """`write_batch` for writers with no batched path: one `write` per request."""

    def write_batch(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        return each_or_error(  # type: ignore[return-value]
            lambda r: self.write(r.entities, r.seed, r.attempt, feedback=r.feedback), requests  # type: ignore[attr-defined]
        )


# One line per backend: name -> "module:factory" (imported only when chosen).
EXTRACTORS: Registry[Extractor] = Registry(
    "extractor",
    {
        "lexicon": "syncxr.text.lexicon_extractor:LexiconExtractor",
        "rate-ner": "syncxr.text.rate_ner:RateNerExtractor",
    },
    requires={"rate-ner": ("torch", "transformers")},
)
WRITERS: Registry[ReportWriter] = Registry(
    "report writer",
    {
        "grammar": "syncxr.text.grammar_writer:GrammarWriter",
        "llm": "syncxr.text.llm:build_llm_writer",
    },
)
