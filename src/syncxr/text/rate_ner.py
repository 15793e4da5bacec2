"""RaTE-NER extractor: a transformers token classifier with BIO labels over the five RaTE types.

RaTE-NER (a DeBERTa-v3 / BERT token classifier) tags each token B-TYPE / I-TYPE / O with TYPE in
ABNORMALITY, NON-ABNORMALITY, DISEASE, NON-DISEASE, ANATOMY. This backend splits a text into
sentences (`text.sentences.split_sentences`, the splitter the lexicon extractor uses), tags them in batches, decodes the BIO tags into character spans (via the fast
tokenizer's offset mapping), maps each span to an ontology concept and reads simple
laterality / severity / zone words around it.

Weights come from a local folder or a hub name (e.g. the public RaTE-NER DeBERTa checkpoint);
nothing is downloaded unless the caller names a hub model and the environment allows it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncxr.errors import InfrastructureError, UserError
from syncxr.fsio import missing_dependency
from syncxr.records import ABSENT, ENTITY_TYPES, PRESENT, UNCERTAIN, Entity
from syncxr.text.sentences import split_sentences
from syncxr.vocab import Ontology, load_ontology

log = logging.getLogger(__name__)

# Every BIO label a RaTE-NER checkpoint may carry (label order differs between checkpoints,
# so decoding always goes through the label *strings* of config.id2label).
RATE_NER_LABELS = ("O",) + tuple(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I"))

# Clause delimiters: attributes are read from the clause that holds the span, so in
# "right effusion and left pneumothorax" each finding gets its own side.
_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:and|with|but|while|or)\b", re.IGNORECASE)
_ATTRIBUTE_WORDS: dict[str, dict[str, str]] = {
    "laterality": {
        "left": "left", "right": "right", "bilateral": "bilateral", "bilaterally": "bilateral",
        "both": "bilateral",
    },
    "severity": {
        "mild": "mild", "mildly": "mild", "small": "mild", "minimal": "mild", "trace": "mild",
        "moderate": "moderate", "moderately": "moderate",
        "severe": "severe", "severely": "severe", "large": "severe", "marked": "severe",
        "markedly": "severe",
    },
    "zone": {
        "upper": "upper", "apical": "upper", "apex": "upper", "middle": "middle", "mid": "middle",
        "lower": "lower", "basilar": "lower", "base": "lower", "bases": "lower", "basal": "lower",
    },
}
_HEDGES = re.compile(
    r"\b(?:possible|possibly|probable|probably|may|might|suspected|questionable|cannot be excluded|"
    r"not excluded|likely|suggestive of|concerning for)\b",
    re.IGNORECASE,
)
_MODIFIERS = {w for words in _ATTRIBUTE_WORDS.values() for w in words} | {
    "a", "an", "the", "of", "no", "new", "small-to-moderate", "increased", "decreased",
}


@dataclass(frozen=True)
class Span:
    """A decoded entity mention: [start, end) characters of the tagged text, and its RaTE type."""

    start: int
    end: int
    type: str


def _split_label(label: str) -> tuple[str, str]:
    """'B-NON-DISEASE' -> ('B', 'NON-DISEASE'); 'O' -> ('O', '')."""
    if label == "O" or "-" not in label:
        return "O", ""
    prefix, typ = label.split("-", 1)
    return prefix.upper(), typ.upper()


def decode_bio(text: str, offsets: list[tuple[int, int]], labels: list[str]) -> list[Span]:
    """Decode per-token BIO labels into character spans of `text`.

    `offsets` are the tokenizer's (start, end) character offsets; special and padding tokens have
    (0, 0) and are skipped. Rules (RaTE-NER's post-processing): only B- opens a span; an I- tag
    with no open span of its type is a stray and opens nothing (treated as O); whitespace-only
    tokens are ignored; a sub-word token glued to the previous token (no gap) continues an open
    span even if tagged O or B- of the same type, so a word is never cut in half.
    """
    spans: list[Span] = []
    cur: list[int] | None = None  # [start, end] of the open span
    cur_type = ""
    prev_end = -1
    for (start, end), label in zip(offsets, labels):
        if end <= start or not text[start:end].strip():
            # special / padding token, or a bare '▁' space piece: neutral, neither opens nor
            # closes a span (sentencepiece taggers label these inconsistently)
            continue
        prefix, typ = _split_label(label)
        glued = start == prev_end and text[start:end][:1].isalnum()
        prev_end = end
        if cur is not None and glued and (prefix == "O" or typ == cur_type):
            cur[1] = end
            continue
        if cur is not None and prefix == "I" and typ == cur_type:
            cur[1] = end
            continue
        if cur is not None:
            spans.append(Span(cur[0], cur[1], cur_type))
            cur = None
        if prefix == "B" and typ in ENTITY_TYPES:
            cur, cur_type = [start, end], typ
    if cur is not None:
        spans.append(Span(cur[0], cur[1], cur_type))
    return [_trim(text, s) for s in spans if text[s.start : s.end].strip()]


def _trim(text: str, span: Span) -> Span:
    """Drop whitespace / edge punctuation that sentencepiece offsets often include."""
    start, end = span.start, span.end
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return Span(start, end, span.type) if end > start else span


def slug(text: str) -> str:
    """'Right Hilar  Mass.' -> 'right_hilar_mass' (name of an entity the ontology lacks)."""
    return "_".join(re.findall(r"[a-z0-9]+", text.lower()))


class ConceptMapper:
    """Map a surface phrase to an ontology concept name (or a slug when the ontology lacks it)."""

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self._synonyms: dict[str, str] = {}
        for concept in ontology.concepts:
            for phrase in [concept.name.replace("_", " "), *concept.synonyms]:
                self._synonyms.setdefault(self._norm(phrase), concept.name)
        self._patterns = [
            (re.compile(p, re.IGNORECASE), c.name) for c in ontology.concepts for p in c.patterns
        ]

    @staticmethod
    def _norm(phrase: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", phrase.lower()))

    def name(self, phrase: str) -> str:
        norm = self._norm(phrase)
        words = norm.split()
        core = " ".join(w for w in words if w not in _MODIFIERS)
        singular = " ".join(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in core.split())
        for candidate in (norm, core, singular):
            if candidate in self._synonyms:
                return self._synonyms[candidate]
        for pattern, name in self._patterns:
            if pattern.fullmatch(norm):
                return name
        return slug(core or norm) or "unknown"


def clause_around(text: str, start: int, end: int) -> str:
    """The clause of `text` that contains [start, end) (bounded by commas, 'and', 'with', ...)."""
    left = 0
    for m in _CLAUSE_BREAK.finditer(text, 0, start):
        left = m.end()
    right_match = _CLAUSE_BREAK.search(text, end)
    right = right_match.start() if right_match else len(text)
    return text[left:right]


def read_attributes(span_text: str, context: str, allowed: list[str] | None) -> dict[str, str]:
    """Laterality / severity / zone words, from the span first, then from its clause."""
    attrs: dict[str, str] = {}
    for kind, table in _ATTRIBUTE_WORDS.items():
        if allowed is not None and kind not in allowed:
            continue
        for source in (span_text, context):
            hit = next((table[w] for w in re.findall(r"[a-z]+", source.lower()) if w in table), None)
            if hit:
                attrs[kind] = hit
                break
    return attrs


def _is_oom(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError)


def _halve_after_oom(batch_size: int, error: BaseException, what: str) -> int:
    """The next batch size after CUDA out of memory; InfrastructureError (fails the shard, not
    the samples) when it was already 1."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if batch_size <= 1:
        raise InfrastructureError(f"{what}: CUDA out of memory at batch size 1: {error}") from error
    log.warning("%s: CUDA out of memory, batch size halved to %d", what, batch_size // 2)
    return batch_size // 2


class RateNerExtractor:
    """Extractor backed by a RaTE-NER-style token classifier (transformers).

    model: local folder or hub name of an AutoModelForTokenClassification whose config.id2label
    uses RaTE-NER BIO labels. `extract_batch` tags many texts in one go (sentences are batched).
    max_length: tokens per sentence (RaTE-NER's 512; capped at the model's position table).
    label_map: for checkpoints whose config names its labels LABEL_0, LABEL_1...: config label
    name (or index) -> RaTE-NER label, e.g. {"LABEL_0": "O", "LABEL_1": "B-ABNORMALITY", ...}.
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 512,
        ontology_path: str | Path | None = None,
        label_map: dict[str, str] | None = None,
    ) -> None:
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForTokenClassification, AutoTokenizer
        except ImportError as e:
            raise missing_dependency("the rate-ner extractor", e, "train") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model))
            self.model = AutoModelForTokenClassification.from_pretrained(str(model))
        except (OSError, ValueError) as e:
            raise UserError(
                f"could not load the RaTE-NER model from {str(model)!r}: {e}. Expected a local folder "
                "or hub name of a transformers token-classification model (config.json, weights, "
                "tokenizer files); set extractor.model to such a folder."
            ) from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise UserError(f"the tokenizer of {str(model)!r} is not a fast tokenizer; offsets are needed")
        self.labels = self._check_labels(str(model), self.model.config.id2label, label_map or {})
        self.model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = min(max_length, positions) if isinstance(positions, int) and positions > 0 else max_length
        self.ontology = load_ontology(ontology_path)
        self.mapper = ConceptMapper(self.ontology)
        self._concepts = self.ontology.by_name
        self.backend_id = f"rate-ner:{Path(str(model)).name}"

    @staticmethod
    def _check_labels(model: str, id2label: dict[Any, str], label_map: dict[str, str]) -> list[str]:
        """The RaTE-NER label of each class index: config.id2label, renamed through label_map."""
        table = {int(k): v for k, v in id2label.items()} if id2label else {}
        names = [table[i] for i in sorted(table)]
        stale = sorted(k for k in label_map if k not in names and k not in {str(i) for i in table})
        bad = sorted(v for v in label_map.values() if v.upper() not in RATE_NER_LABELS)
        if stale or bad:
            raise UserError(
                f"extract.options.label_map for {model!r}: keys {stale} are not labels or indices of the "
                f"checkpoint (it has {names}); values {bad} are not RaTE-NER labels ({list(RATE_NER_LABELS)})"
            )
        labels = [label_map.get(name, label_map.get(str(i), name)).upper() for i, name in zip(sorted(table), names)]
        unknown = [lab for lab in labels if lab not in RATE_NER_LABELS]
        if not labels or unknown:
            raise UserError(
                f"model {model!r} has labels {names}, which are not RaTE-NER BIO labels "
                f"(unknown: {unknown}); expected a subset of {list(RATE_NER_LABELS)} in config.id2label, "
                "or set extract.options.label_map to rename them, e.g. {LABEL_0: O, LABEL_1: B-ABNORMALITY, ...}"
            )
        return labels

    def extract(self, text: str, section: str = "") -> list[Entity]:
        return self.extract_batch([text], [section])[0]

    def extract_batch(self, texts: list[str], sections: list[str] | None = None) -> list[list[Entity]]:
        """Entities of each text (spans relative to that text), tagging all sentences in batches."""
        sections = sections or [""] * len(texts)
        pieces = [(i, s, e) for i, text in enumerate(texts) for s, e in split_sentences(text)]
        out: list[list[Entity]] = [[] for _ in texts]
        lo = 0
        while lo < len(pieces):
            chunk = pieces[lo : lo + self.batch_size]
            try:
                tagged = self._tag([texts[i][s:e] for i, s, e in chunk])
            except Exception as e:
                if not _is_oom(e):
                    raise
                self.batch_size = _halve_after_oom(self.batch_size, e, "rate-ner")
                continue
            for (i, s, e), spans in zip(chunk, tagged):
                out[i].extend(self._entity(texts[i], s, e, span, sections[i]) for span in spans)
            lo += len(chunk)
        return out

    def _tag(self, sents: list[str]) -> list[list[Span]]:
        """BIO-decoded spans of each sentence (offsets relative to the sentence)."""
        import torch

        enc = self.tokenizer(
            sents, padding=True, truncation=True, max_length=self.max_length,
            return_offsets_mapping=True, return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping").tolist()  # (B, T, 2)
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            logits = self.model(**enc).logits  # (B, T, num_labels)
        pred = logits.argmax(-1).tolist()  # (B, T)
        mask = enc["attention_mask"].tolist()
        result = []
        for b, sent in enumerate(sents):
            offs = [tuple(o) if m else (0, 0) for o, m in zip(offsets[b], mask[b])]
            result.append(decode_bio(sent, offs, [self.labels[p] for p in pred[b]]))
        return result

    def _entity(self, text: str, s_start: int, s_end: int, span: Span, section: str) -> Entity:
        start, end = s_start + span.start, s_start + span.end
        surface = text[start:end]
        name = self.mapper.name(surface)
        concept = self._concepts.get(name)
        sentence = text[s_start:s_end]
        clause = clause_around(sentence, span.start, span.end)
        if span.type.startswith("NON-"):
            # An explicit-normal concept (base type NON-*) is present; otherwise NON- means negated.
            assertion = PRESENT if concept is not None and concept.type.startswith("NON-") else ABSENT
        else:
            assertion = UNCERTAIN if span.type != "ANATOMY" and _HEDGES.search(clause) else PRESENT
        allowed = list(concept.attributes) if concept is not None else None
        attrs = {} if span.type == "ANATOMY" else read_attributes(surface, clause, allowed)
        return Entity(
            name=name, type=span.type, assertion=assertion, attributes=attrs,
            text=surface, section=section, start=start, end=end,
        )
