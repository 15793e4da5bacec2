"""LLM report writer: prompt formatting and output parsing (here) over a pluggable transport.

The prompt is a data file (prompts/report_writer.txt: a [system] and a [user] section). The writer
lists the sampled entities grouped by RaTE type, asks for FINDINGS and IMPRESSION with exactly
those entities, and parses the two sections back. Transports (syncxr/transports/) only move
messages: any OpenAI-compatible server (including `vllm serve`), in-process transformers, or
offline vLLM.

`write_batch` sends a whole round through `Transport.complete_batch` (concurrent HTTP requests,
or one vLLM call). Failures of one sample are data: `ReportParseError` / `LLMRequestRejected`
carry a `reason` code that the write stage records as the sample's reject reason. A
`TransportError` (server unreachable or failing after retries) is an `InfrastructureError`: it is
raised and fails the shard, which a rerun redoes.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from syncxr.errors import UserError
from syncxr.records import ENTITY_TYPES, Entity, derive_seed
from syncxr.text.base import WriteRequest, WriteResult
from syncxr.transports.base import TRANSPORTS, ChatRequest, LLMError, Transport, TransportError, complete_each
from syncxr.vocab import Ontology, load_ontology

log = logging.getLogger(__name__)

DEFAULT_PROMPT = Path(__file__).with_name("prompts") / "report_writer.txt"

__all__ = [
    "LLMError", "ReportParseError", "TransportError", "PromptTemplate", "LLMReportWriter",
    "load_prompt", "format_entities", "parse_report", "build_llm_writer", "preflight_llm", "TRANSPORTS",
]

class ReportParseError(LLMError):
    """The LLM answer has no usable FINDINGS / IMPRESSION sections."""

    reason = "write_parse_error"


@dataclass(frozen=True)
class PromptTemplate:
    system: str
    user: str  # contains {entities} and {feedback}


def load_prompt(path: str | Path | None = None) -> PromptTemplate:
    """Read a prompt file: '#' comment lines, then [system] and [user] sections."""
    p = Path(path) if path else DEFAULT_PROMPT
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(
            f"cannot read the report-writer prompt {p}: {e}; set writer.prompt_path to a readable file"
        ) from None
    sections: dict[str, list[str]] = {}
    current = None
    for line in raw.splitlines():
        m = re.fullmatch(r"\s*\[(system|user)\]\s*", line)
        if m:
            current = m.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise UserError(f"{p}: text before the first [system]/[user] line: {line!r}; start a section first")
    if "user" not in sections or "{entities}" not in "\n".join(sections["user"]):
        raise UserError(f"{p}: expected a [user] section containing the placeholder {{entities}}")
    return PromptTemplate(
        system="\n".join(sections.get("system", [])).strip(),
        user="\n".join(sections["user"]).strip(),
    )


_SIZE_WORDS = {"mild": "small", "moderate": "moderate", "severe": "large"}


def _display(entity: Entity, ontology: Ontology) -> str:
    """Preferred wording of an entity plus its attributes, e.g. 'pleural effusion [right, small]'."""
    concept = ontology.by_name.get(entity.name)
    phrase = concept.synonyms[0] if concept else (entity.text or entity.name.replace("_", " "))
    words = []
    for kind in ("laterality", "severity", "zone", "count"):  # count: "single" / "two" / "multiple"
        value = entity.attributes.get(kind)
        if value:
            sized = kind == "severity" and concept is not None and concept.size_words
            words.append(_SIZE_WORDS.get(value, value) if sized else value)
    return f"{phrase} [{', '.join(words)}]" if words else phrase


def format_entities(entities: list[Entity], ontology: Ontology) -> str:
    """Entities grouped by type, one '- phrase [attributes]' line each, in RaTE type order."""
    lines = []
    for typ in ENTITY_TYPES:
        group = [e for e in entities if e.type == typ]
        if group:
            lines.append(f"{typ}:")
            lines.extend(f"- {_display(e, ontology)}" for e in group)
    return "\n".join(lines) if lines else "(none: write a normal chest X-ray report)"


# A FINDINGS / IMPRESSION header: at a line start, optionally markdown-decorated ('## ', '**',
# '> '), any case, then a colon or the end of the line.
_HEADER = re.compile(
    r"^[ \t>]*(?:#{1,6}[ \t]*)?[*_]*[ \t]*(findings|impression)[ \t]*[*_]*[ \t]*(?::[*_]*|$)",
    re.IGNORECASE | re.MULTILINE,
)
# Where trailing chatter starts: a markdown heading, a rule, or another 'Word(s):' header line.
_STOP = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]|-{3,}|\*{3,}|[*_]*(?:note|notes|explanation|comments?|entities)[*_]*[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)


def _clean(body: str) -> str:
    """Markdown-free single-paragraph text of a section body."""
    body = body.replace("```", " ")
    body = re.sub(r"(\*\*|__|\*|`)", "", body)
    lines = [re.sub(r"^\s*(?:[-+•]|\d+[.)])\s+", "", ln) for ln in body.splitlines()]
    return " ".join(" ".join(lines).split())


def parse_report(answer: str) -> tuple[str, str]:
    """(findings, impression) from an LLM answer; tolerant to markdown, bold and case.

    Raises ReportParseError (reason 'write_parse_error') when a header is missing or a section
    is empty.
    """
    text = _THINK.sub("", answer)
    heads = list(_HEADER.finditer(text))
    found: dict[str, str] = {}
    for i, m in enumerate(heads):
        key = m.group(1).lower()
        if key in found:  # a repeated header: keep the first section of each kind
            continue
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[m.end() : end]
        stop = _STOP.search(body)
        found[key] = _clean(body[: stop.start()] if stop else body)
    missing = [k.upper() for k in ("findings", "impression") if k not in found]
    if missing:
        raise ReportParseError(f"no {' / '.join(missing)} header in the LLM answer: {answer[:160]!r}")
    empty = [k.upper() for k in ("findings", "impression") if not found[k]]
    if empty:
        raise ReportParseError(f"empty {' / '.join(empty)} section in the LLM answer: {answer[:160]!r}")
    return found["findings"], found["impression"]


class LLMReportWriter:
    """ReportWriter that prompts an LLM through a Transport and parses its answer.

    Seeds: each (seed, attempt) gives its own request seed, so a rewrite is a new draw while a
    rerun is the same draw (for transports and servers that honour seeds).
    """

    def __init__(
        self,
        transport: Transport,
        prompt_path: str | Path | None = None,
        temperature: float = 0.7,
        max_tokens: int = 512,
        ontology_path: str | Path | None = None,
    ) -> None:
        self.transport = transport
        self.prompt = load_prompt(prompt_path)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.ontology = load_ontology(ontology_path)
        self.backend_id = f"llm:{transport.backend_id}"

    adds_filler = False  # the prompt asks for the given entities only; verification checks it
    uses_feedback = True

    def messages(self, entities: list[Entity], feedback: str = "") -> list[dict[str, Any]]:
        """Chat messages for one entity set (feedback: why the previous report was rejected)."""
        note = ""
        if feedback:
            note = (
                f"\nYour previous report for these entities was rejected: {feedback}\n"
                "Write a corrected report that fixes this.\n"
            )
        user = self.prompt.user.replace("{entities}", format_entities(entities, self.ontology))
        user = user.replace("{feedback}", note)
        msgs = [{"role": "system", "content": self.prompt.system}] if self.prompt.system else []
        return msgs + [{"role": "user", "content": user}]

    def request_seed(self, seed: int, attempt: int) -> int:
        # 31 bits: the range every OpenAI-compatible server and vLLM accept.
        return derive_seed(seed, f"attempt{attempt}", "llm-writer") & 0x7FFFFFFF

    def chat_request(self, request: WriteRequest) -> ChatRequest:
        """The chat of one write request (feedback is read on rewrites only)."""
        return ChatRequest(
            self.messages(request.entities, request.feedback if request.attempt > 0 else ""),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.request_seed(request.seed, request.attempt),
        )

    def write(self, entities: list[Entity], seed: int, attempt: int = 0, feedback: str = "") -> tuple[str, str]:
        """(findings, impression); raises ReportParseError / LLMError (data, with `.reason`) or
        TransportError (infrastructure)."""
        result = self.write_batch([WriteRequest(entities, seed, attempt, feedback)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def write_batch(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        """One result per request, in order: all chats go to the transport at once
        (`complete_batch`); each answer is parsed on its own. TransportError is raised."""
        chats = [self.chat_request(r) for r in requests]
        batch = getattr(self.transport, "complete_batch", None)
        answers = batch(chats) if callable(batch) else complete_each(self.transport, chats)
        out: list[WriteResult] = []
        for answer in answers:
            if isinstance(answer, Exception):
                out.append(answer)
                continue
            try:
                out.append(parse_report(answer))
            except ReportParseError as e:
                out.append(e)
        return out


def build_llm_writer(
    transport: str = "openai",
    prompt_path: str | Path | None = None,
    temperature: float = 0.7,
    max_tokens: int = 512,
    ontology_path: str | Path | None = None,
    **transport_kwargs: Any,
) -> LLMReportWriter:
    """Writer from plain config values: transport name ('openai', 'transformers', 'vllm') + its args."""
    backend = TRANSPORTS.build(transport, **transport_kwargs)
    return LLMReportWriter(backend, prompt_path, temperature, max_tokens, ontology_path)


def _check_llm_options(kwargs: dict[str, Any]) -> None:
    """What `build_llm_writer` forwards to its transport, checked against that transport's
    parameters without connecting or loading anything (the registry calls this)."""
    own = {p for p in inspect.signature(build_llm_writer).parameters if p != "transport_kwargs"}
    TRANSPORTS.check(kwargs.get("transport", "openai"), {k: v for k, v in kwargs.items() if k not in own})


build_llm_writer.check_options = _check_llm_options  # type: ignore[attr-defined]


def preflight_llm(options: dict[str, Any]) -> None:
    """Pre-flight of an `llm` writer's options, for the parent process before any work: for the
    `openai` transport one cheap request (GET /models) that raises UserError on 401/403, an
    unreachable server or a model the server does not serve. In-process transports (transformers,
    vllm) load weights, so the parent does not build them: nothing to check here."""
    _check_llm_options(dict(options))
    transport = options.get("transport", "openai")
    if transport != "openai":
        return
    own = {p for p in inspect.signature(build_llm_writer).parameters if p != "transport_kwargs"}
    TRANSPORTS.build("openai", **{k: v for k, v in options.items() if k not in own}).preflight()


def fingerprint_llm(options: dict[str, Any]) -> str:
    """What identifies the writer's weights, computed without loading them: for the openai
    transport the served model name at its server (the weights live there, unseen:
    'served:<base_url>#<model>'); for in-process transports `syncxr.weights.fingerprint` of the
    model folder or hub name."""
    from syncxr.weights import fingerprint

    if options.get("transport", "openai") == "openai":
        return f"served:{str(options.get('base_url', '')).rstrip('/')}#{options.get('model', '')}"
    return fingerprint(options["model"])


# Hooks the pipeline looks up on the factory (parent process, nothing built or loaded).
build_llm_writer.preflight = preflight_llm  # type: ignore[attr-defined]
build_llm_writer.fingerprint = fingerprint_llm  # type: ignore[attr-defined]
