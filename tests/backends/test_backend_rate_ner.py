"""RaTE-NER extractor: a tiny random DeBERTa-v2 token classifier + offline tokenizer, saved to a
temp folder and loaded back through the real loading path; decoding checked on forced labels."""

from __future__ import annotations

import os
import types

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny import build_token_classifier, deberta_tokenizer  # noqa: E402

from syncxr.errors import UserError  # noqa: E402
from syncxr.records import ABSENT, PRESENT, UNCERTAIN  # noqa: E402
from syncxr.text.base import EXTRACTORS, Extractor  # noqa: E402
from syncxr.text.rate_ner import RATE_NER_LABELS, Span, decode_bio  # noqa: E402
from syncxr.text.sentences import split_sentences  # noqa: E402

CORPUS = [
    "Small right pleural effusion. No pneumothorax.",
    "Possible left hilar fullness. Heart size is normal.",
    "Opacity in the right lower lobe.",
    "Mild cardiomegaly with bilateral effusions and atelectasis at the lung bases.",
]

ONTOLOGY_YAML = """
version: 1
concepts:
  - {name: pleural_effusion, type: DISEASE, synonyms: [pleural effusion, effusion], attributes: [laterality, severity]}
  - {name: pneumothorax, type: DISEASE, synonyms: [pneumothorax], attributes: [laterality]}
  - {name: normal_heart_size, type: NON-ABNORMALITY, synonyms: [normal heart size, heart size is normal]}
  - {name: right_lower_lobe, type: ANATOMY, synonyms: [right lower lobe]}
"""


def _tokenizer():
    return deberta_tokenizer(CORPUS)


_save_model = build_token_classifier


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("rate_ner")
    # Shuffled label order: decoding must go through config.id2label, not a fixed order.
    labels = list(reversed(RATE_NER_LABELS))
    _save_model(path, _tokenizer(), labels)
    onto = path / "onto.yaml"
    onto.write_text(ONTOLOGY_YAML)
    return path


@pytest.fixture(scope="module")
def extractor(model_dir):
    return EXTRACTORS.build("rate-ner", model=str(model_dir), ontology_path=str(model_dir / "onto.yaml"), batch_size=2)


def test_decode_bio_handles_subwords_stray_i_and_punctuation():
    text = "Small right pleural effusion. No ptx."
    # tokens: ▁small ▁right ▁pleu ral ▁eff usion . ▁no ▁pt x .
    offsets = [(0, 0), (0, 5), (5, 11), (11, 16), (16, 19), (19, 23), (23, 28), (28, 29), (29, 32), (32, 35), (35, 36), (36, 37), (0, 0)]
    labels = ["O", "O", "O", "B-DISEASE", "O", "I-DISEASE", "B-DISEASE", "O", "O", "I-NON-DISEASE", "O", "O", "O"]
    # "ral" is tagged O but glued to "▁pleu": it continues the span; "usion" tagged B- of the same
    # type but glued: continues; "." is glued but not alphanumeric: ends the span; a stray
    # I-NON-DISEASE (no open span) opens nothing, and its glued sub-word "x" joins nothing.
    assert decode_bio(text, offsets, labels) == [Span(12, 28, "DISEASE")]
    assert text[12:28] == "pleural effusion"
    labels[9] = "B-NON-DISEASE"  # the same token, properly opened
    assert decode_bio(text, offsets, labels) == [Span(12, 28, "DISEASE"), Span(33, 36, "NON-DISEASE")]


def test_decode_bio_splits_adjacent_entities_and_ignores_stray_i():
    text = "lung opacity"
    offsets = [(0, 4), (4, 12)]
    assert decode_bio(text, offsets, ["B-ANATOMY", "B-ABNORMALITY"]) == [Span(0, 4, "ANATOMY"), Span(5, 12, "ABNORMALITY")]
    # an I- of another type closes the open span and opens nothing
    assert decode_bio(text, offsets, ["B-ANATOMY", "I-ABNORMALITY"]) == [Span(0, 4, "ANATOMY")]
    assert decode_bio(text, offsets, ["I-ANATOMY", "I-ANATOMY"]) == []
    assert decode_bio(text, offsets, ["O", "O"]) == []
    # a bare space piece between the words is neutral: the span runs across it
    spaced = [(0, 4), (4, 5), (5, 12)]
    assert decode_bio(text, spaced, ["B-ABNORMALITY", "O", "I-ABNORMALITY"]) == [Span(0, 12, "ABNORMALITY")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No effusion. Heart normal!\nLungs clear", ["No effusion.", "Heart normal!", "Lungs clear"]),
        ("A 1.5 cm nodule in the right upper lobe. No effusion.", ["A 1.5 cm nodule in the right upper lobe.", "No effusion."]),
        ("Measures 2.0 x 1.5 cm.  Stable.\n\nPortable AP. Clear.", ["Measures 2.0 x 1.5 cm.", "Stable.", "Portable AP.", "Clear."]),
        ("Opacity, e.g. pneumonia. Approx. 2 cm. Dr. Smith was notified.", ["Opacity, e.g. pneumonia.", "Approx. 2 cm.", "Dr. Smith was notified."]),
        ("1. Small effusion. 2. No pneumothorax.", ["1. Small effusion.", "2. No pneumothorax."]),
        ("Is there a pneumothorax? No. Effusion vs. atelectasis at L4.5 level", ["Is there a pneumothorax?", "No.", "Effusion vs. atelectasis at L4.5 level"]),
        ("", []),
    ],
)
def test_sentences_survive_decimals_abbreviations_and_list_numbers(text, expected):
    # the backend cuts text with the lexicon extractor's splitter (whitespace-trimmed spans)
    assert [text[s:e] for s, e in split_sentences(text)] == expected


def test_random_model_loads_and_returns_consistent_spans(extractor):
    assert isinstance(extractor, Extractor)
    assert extractor.backend_id == f"rate-ner:{os.path.basename(extractor.backend_id.split(':', 1)[1])}"
    text = CORPUS[3]
    entities = extractor.extract(text, "findings")
    for ent in entities:  # random weights: any tags, but every span must be well-formed
        assert ent.text == text[ent.start : ent.end] and ent.text.strip() == ent.text
        assert ent.type in {lab.split("-", 1)[1] for lab in RATE_NER_LABELS if lab != "O"}
        assert ent.section == "findings" and ent.name


def _force_labels(extractor, monkeypatch, targets: dict[str, list[tuple[str, str]]]):
    """Make the model output fixed tags: for each sentence, (phrase, TYPE) pairs to tag B/I."""
    tok, labels = extractor.tokenizer, extractor.labels
    table = {}
    for sent, phrases in targets.items():
        enc = tok(sent, return_offsets_mapping=True)
        tags = ["O"] * len(enc["input_ids"])
        for phrase, typ in phrases:
            lo = sent.index(phrase)
            hi = lo + len(phrase)
            inside = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s < hi and e > lo and sent[max(s, lo):min(e, hi)].strip()]
            for j, i in enumerate(inside):
                tags[i] = ("B-" if j == 0 else "I-") + typ
        table[tuple(enc["input_ids"])] = tags

    def forward(input_ids, attention_mask=None, **_):
        logits = torch.full((*input_ids.shape, len(labels)), -5.0)  # (B, T, L)
        for b in range(input_ids.shape[0]):
            ids = tuple(input_ids[b][attention_mask[b].bool()].tolist())
            for t, tag in enumerate(table[ids]):
                logits[b, t, labels.index(tag)] = 5.0
            logits[b, len(ids):, labels.index("O")] = 5.0
        return types.SimpleNamespace(logits=logits)

    monkeypatch.setattr(extractor.model, "forward", forward)


def test_forced_labels_map_to_concepts_types_and_attributes(extractor, monkeypatch):
    texts = ["Small right pleural effusion. No pneumothorax.", "Possible left hilar fullness. Heart size is normal. Opacity in the right lower lobe."]
    _force_labels(extractor, monkeypatch, {
        "Small right pleural effusion.": [("pleural effusion", "DISEASE")],
        " No pneumothorax.": [("pneumothorax", "NON-DISEASE")],
        "Possible left hilar fullness.": [("hilar fullness", "ABNORMALITY")],
        " Heart size is normal.": [("Heart size is normal", "NON-ABNORMALITY")],
        " Opacity in the right lower lobe.": [("Opacity", "ABNORMALITY"), ("right lower lobe", "ANATOMY")],
    })
    first, second = extractor.extract_batch(texts, ["findings", "impression"])
    got = [(e.name, e.type, e.assertion, e.attributes, e.text, e.section) for e in first + second]
    assert got == [
        ("pleural_effusion", "DISEASE", PRESENT, {"laterality": "right", "severity": "mild"}, "pleural effusion", "findings"),
        ("pneumothorax", "NON-DISEASE", ABSENT, {}, "pneumothorax", "findings"),
        # not in the ontology: a slug name, hedged -> uncertain, any attribute kind allowed
        ("hilar_fullness", "ABNORMALITY", UNCERTAIN, {"laterality": "left"}, "hilar fullness", "impression"),
        # an explicit-normal concept is present, not negated
        ("normal_heart_size", "NON-ABNORMALITY", PRESENT, {}, "Heart size is normal", "impression"),
        ("opacity", "ABNORMALITY", PRESENT, {"laterality": "right", "zone": "lower"}, "Opacity", "impression"),
        ("right_lower_lobe", "ANATOMY", PRESENT, {}, "right lower lobe", "impression"),
    ]
    for text, ents in zip(texts, (first, second)):
        assert all(text[e.start : e.end] == e.text for e in ents)


def test_non_rate_labels_are_refused(tmp_path):
    _save_model(tmp_path, _tokenizer(), ["O", "B-PER", "I-PER"])
    with pytest.raises(UserError, match="not RaTE-NER BIO labels"):
        EXTRACTORS.build("rate-ner", model=str(tmp_path))


def test_label_map_renames_generic_labels(tmp_path):
    rate = ["O", "B-ABNORMALITY", "I-ABNORMALITY", "B-ANATOMY", "I-ANATOMY"]
    _save_model(tmp_path, _tokenizer(), [f"LABEL_{i}" for i in range(len(rate))])
    with pytest.raises(UserError, match="set extract.options.label_map"):
        EXTRACTORS.build("rate-ner", model=str(tmp_path))
    mapping = {f"LABEL_{i}": lab for i, lab in enumerate(rate[:-1])} | {"4": "i-anatomy"}  # by name or index
    ext = EXTRACTORS.build("rate-ner", model=str(tmp_path), label_map=mapping)
    assert ext.labels == rate
    with pytest.raises(UserError, match=r"keys \['LABEL_9'\].*values \['B-PERSON'\]"):
        EXTRACTORS.build("rate-ner", model=str(tmp_path), label_map={"LABEL_9": "O", "LABEL_0": "B-PERSON"})


def test_max_length_defaults_to_512_capped_by_the_model(extractor):
    import inspect

    from syncxr.text.rate_ner import RateNerExtractor

    assert inspect.signature(RateNerExtractor).parameters["max_length"].default == 512
    assert extractor.max_length == 128  # the tiny model's position table
    long_sentence = " ".join(["small right pleural effusion"] * 80) + "."
    (entities,) = extractor.extract_batch([long_sentence])  # truncated, not a crash
    assert all(e.end <= len(long_sentence) for e in entities)


def test_batched_extraction_equals_one_text_at_a_time(extractor):
    batched = extractor.extract_batch(CORPUS, ["findings"] * len(CORPUS))
    assert batched == [extractor.extract(t, "findings") for t in CORPUS]
    assert sum(map(len, batched)) > 0  # the random tagger does tag something


def test_missing_model_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="could not load the RaTE-NER model"):
        EXTRACTORS.build("rate-ner", model=str(tmp_path / "nope"))


def test_out_of_memory_halves_the_batch_then_fails_the_shard(model_dir, monkeypatch):
    from syncxr.errors import InfrastructureError

    ext = EXTRACTORS.build("rate-ner", model=str(model_dir), ontology_path=str(model_dir / "onto.yaml"), batch_size=8)
    expected = ext.extract_batch(CORPUS)  # 6 sentences
    real, sizes = ext._tag, []

    def tag(sents, fits=3):
        sizes.append(len(sents))
        if len(sents) > fits:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(sents)

    monkeypatch.setattr(ext, "_tag", tag)
    assert ext.extract_batch(CORPUS) == expected
    assert sizes == [6, 4, 2, 2, 2] and ext.batch_size == 2  # 6 and 4 fail; then 2 + 2 + 2
    monkeypatch.setattr(ext, "_tag", lambda sents: tag(sents, fits=0))
    with pytest.raises(InfrastructureError, match="rate-ner: CUDA out of memory at batch size 1"):
        ext.extract_batch(CORPUS)
