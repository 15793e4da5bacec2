"""The one sentence splitter of radiology reports (the lexicon extractor and the RaTE-NER backend
both cut text with `split_sentences`): periods, list items, blank lines, missing periods, and
all-caps dictation where only line structure marks sentence ends.

A period ends a sentence unless it closes an abbreviation ("e.g.", "vs.", "approx.", "Dr.") or a
list number that opens the sentence ("1. Small effusion."); decimals ("1.5 cm", "L4.5") never
split, as a break needs whitespace or a capital right after the period."""

from __future__ import annotations

import re

from syncxr.text.lexicon import Lexicon, safe_lower

# Sentence breaks: ". " / "! " always; "? " before a capital; blank lines; a newline that starts a
# list item; a period glued to a capital. In mixed-case text also a line or a double space
# followed by a capital (reports with missing periods); in all-caps text a newline only where the
# line was not wrapped (`_caps_line_breaks`).
_BREAKS = r"(?<=[.!])\s+|(?<=\?)\s+(?=[A-Z0-9])|\n\s*\n\s*|\n\s*(?=(?:\d+[.)]|[-*\u2022])\s)|(?<=[a-z]\.)(?=[A-Z])"
_SENT_BREAK_CAPS = re.compile(_BREAKS)
_SENT_BREAK = re.compile(_BREAKS + r"|\n\s*(?=[A-Z])|\s{2,}(?=[A-Z])")
_LOWER = re.compile(r"[a-z]")
# Words a period does not end a sentence after (lower case, without their final period). Units
# ("cm.") and views ("AP.") are left out: reports end sentences with those.
ABBREVIATIONS = frozenset(
    "e.g i.e eg ie approx dr vs cf fig mr mrs ms prof resp incl ca al pt pts hx st".split()
)
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # "e.g", "i.e", "a.m"
_ABBREVIATION_LEN = max(map(len, ABBREVIATIONS))
_LAST_WORD = re.compile(r"(?<![A-Za-z])[A-Za-z.]+$")
_LIST_NUMBER = re.compile(r"\s*(?:\d{1,2}|[a-z])", re.IGNORECASE)


def split_sentences(text: str, lexicon: Lexicon | None = None) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of `text`, whitespace-trimmed, non-empty.
    With `lexicon`, an all-caps line is never cut inside a concept phrase ("PLEURAL\nEFFUSION")."""
    if _LOWER.search(text):
        cuts = [(m.start(), m.end()) for m in _SENT_BREAK.finditer(text)]
    else:
        lines = _caps_line_breaks(text)
        if lexicon is not None:
            lines = [c for c in lines if not _inside_phrase(text, c, lexicon)]
        cuts = sorted([(m.start(), m.end()) for m in _SENT_BREAK_CAPS.finditer(text)] + lines)
    out, pos = [], 0
    for s, e in cuts:
        if s < pos:  # overlaps a cut already taken
            continue
        if s > 0 and text[s - 1] == "." and not _period_ends(text, pos, s - 1):
            continue
        out.append((pos, s))
        pos = e
    out.append((pos, len(text)))
    spans = []
    for s, e in out:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
    return spans


def _period_ends(text: str, start: int, dot: int) -> bool:
    """Whether the period at `dot` ends the sentence that began at `start` (module docstring)."""
    if dot - start <= 3 and _LIST_NUMBER.fullmatch(text, start, dot):
        return False  # "1. Small effusion.": the number opens the sentence
    # the word before the period (abbreviations are short: a longer word is none of them)
    m = _LAST_WORD.search(text, max(start, dot - _ABBREVIATION_LEN - 1), dot)
    word = m.group().lower() if m else ""
    return not (word in ABBREVIATIONS or _DOTTED.fullmatch(word))


# A line ending like this continues on the next line ("NO EFFUSION, PNEUMOTHORAX, OR\nCONSOLIDATION").
_CONTINUES = re.compile(r"(?:[,/&-]|\b(?:AND|OR|NOR|OF|THE|A|AN|WITH|WITHOUT|NO|NOT|IN|AT|TO|FOR|FROM|BY|ON|IS|ARE|WAS|WERE))$")
_SHORT_LINE = 40  # characters: a line shorter than this was not wrapped by a fixed-width editor


def _caps_line_breaks(text: str) -> list[tuple[int, int]]:
    """Sentence breaks at single newlines of an all-caps text (no periods to go by).

    A newline is a break unless it wraps a line: the line before it is long (>= 40 characters and
    >= 75% of the longest line, as fixed-width wrapping leaves it) or ends with a word or comma
    that needs a continuation."""
    lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]
    widths = [len(text[s:e].strip()) for s, e in lines]
    if len(lines) < 2:
        return []
    longest = max(widths)
    cuts = []
    for (s, e), width, (nxt, _) in zip(lines, widths, lines[1:]):
        line = text[s:e].rstrip()
        if not line.strip() or _CONTINUES.search(line):
            continue
        if width >= _SHORT_LINE and width >= 0.75 * longest:
            continue
        cuts.append((s + len(line), nxt))
    return cuts


def _inside_phrase(text: str, cut: tuple[int, int], lexicon: Lexicon) -> bool:
    """True when a concept phrase runs across the line break `cut` (a few words either side)."""
    low = safe_lower(text)
    a = max(low.rfind(" ", 0, max(cut[0] - 40, 0)), 0)
    b = low.find(" ", cut[1] + 40)
    b = len(low) if b < 0 else b
    return any(m.start < cut[0] and m.end > cut[1] for m in lexicon.find(low, a, b))
