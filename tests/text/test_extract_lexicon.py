"""Lexicon helpers of the built-in extractor: start-word indexing of regex alternations."""

import re

from syncxr.text.lexicon import WordAlternation, glued_stems, literal_words, tokenize


def test_literal_words_and_stems():
    assert literal_words(["suggests? (?:of|for)"]) == {"suggests", "suggest", "of", "for"}
    assert literal_words([r"(?<=to\s)(?:exclude|identify)"]) == {"exclude", "identify"}  # look-behind is context
    assert glued_stems("elevat(?:ed|ion of the) (?:left|right) hemidiaphragm") == {"elevat"}


def test_word_alternation_matches_like_the_whole_alternation():
    patterns = [
        r"elevat(?:ed|ion of the) (?:left|right) hemidiaphragm",
        r"(?:left|right) hemidiaphragm is elevated",
        r"no (?:evidence of )?pneumothorax",
        r"no",
        r"pleural effusions?",
    ]
    alts = [f"(?P<p{i}>{p.replace(' ', r'[ ]+')})" for i, p in enumerate(patterns)]
    whole = re.compile("|".join(alts))
    words = literal_words(patterns)
    indexed = WordAlternation(alts, [literal_words([p]) for p in patterns], [glued_stems(p) for p in patterns])
    text = "elevated right hemidiaphragm. no evidence of pneumothorax. right hemidiaphragm is elevated. no pleural effusions."
    toks = tokenize(text)
    expected, taken = [], -1
    for tok, s, _ in toks:  # the whole alternation tried at every candidate word
        if s >= taken and (tok in words or tok == "elevated"):
            m = whole.match(text, s)
            if m:
                expected.append((m.start(), m.end(), m.lastgroup))
                taken = m.end()
    got = [(m.start(), m.end(), m.lastgroup) for m in indexed.scan(text, toks, len(text))]
    assert got == expected
    assert [g for *_, g in got] == ["p0", "p2", "p1", "p3", "p4"]
