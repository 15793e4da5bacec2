"""ConText/NegEx-style assertion of concept mentions: present, absent (negated) or uncertain.

What counts as uncertain follows how radiologists write and how the report's indexers read it
(the IU / OpenI MeSH coding, the labels the extractor is scored against): a finding the
radiologist names as the favoured reading is present, a finding offered as a mere possibility is
uncertain. So "probable effusion", "likely atelectasis", "most suggestive of edema" and a named
differential without a hedge word ("atelectasis versus scarring", "atelectasis or pneumonia":
the radiologist sees both in the differential and indexers code both) read present; "possible",
"may represent", "could reflect", "suspected", "cannot exclude", "suggestive of", "concern for",
"less likely" read uncertain, and a hedge covers the whole differential after it ("may represent
atelectasis or pneumonia": both uncertain).

The cue table (what each trigger word does) is `cues.py`. Within one sentence, triggers are found
with one regex (longest alternative first, so "no interval change" is a pseudo-trigger, not "no"):

- forward negation ("no", "without", "free of", "negative for", "resolution of", ...) and forward
  uncertainty ("possible", "may represent", "cannot exclude", "suspicious for", "?", ...) cover
  the first mention after them and then a *list*: each next mention stays in scope while it is
  joined to the previous one as a list member, never past a terminator (see `forward_scope`):
  * "or" / "nor" / "versus" joins continue ("no pneumothorax or large effusion": both negated;
    "may represent atelectasis versus pneumonia": both uncertain);
  * comma / "and" joins continue over bare items ("no effusion, pneumothorax, or consolidation")
    but end at an item with its own affirmative modifier (severity or size words, "new",
    "increased", "persistent", "improving", ...: "no pneumothorax, mild cardiomegaly"), at an item
    followed by a verb ("no effusion, pneumothorax is present"), and at a side word after a
    bare comma unless an "or"/"nor" later closes the list ("no effusion, left consolidation");
  * a mention that is itself a clause ("heart is enlarged", a normal statement) or follows with
    no separator at all (all-caps lines run together) ends the list;
- backward negation ("... is not seen", "... has resolved", "... removed") and backward
  uncertainty ("... cannot be excluded", "... is suspected") cover the mention just before them and
  any mentions joined to it as a list ("effusion or pneumothorax is not seen");
- "resolved", "unlikely" (negative) and "difficult to exclude" (uncertain) work both ways;
- terminators end a forward scope: ";", ":", "but", "however", "although", "though", "except",
  "aside from", "other than", "which", "whereas", "while", "with", "there is/are",
  "and" before "the/there/a/an/is/are";
- pseudo-triggers cover nothing: "no change", "no interval change", "without change", "not only"...

When several triggers cover a mention, the nearest one wins. Triggers that lie wholly inside a concept's own span ("no acute cardiopulmonary process") are
ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from syncxr.records import ABSENT, PRESENT, UNCERTAIN
from syncxr.text.cues import (
    LINK,
    LINK_UNC,
    NEG_B,
    NEG_BI,
    NEG_F,
    PURPOSE,
    RECOMMENDATION,
    TERM,
    TRIGGERS,
    UNC_B,
    UNC_BI,
    UNC_F,
)
from syncxr.text.lexicon import WordAlternation, glued_stems, literal_words, tokenize

_FORWARD = {NEG_F: ABSENT, NEG_BI: ABSENT, UNC_F: UNCERTAIN, UNC_BI: UNCERTAIN, LINK_UNC: UNCERTAIN}
_BACKWARD = {NEG_B: ABSENT, NEG_BI: ABSENT, UNC_B: UNCERTAIN, UNC_BI: UNCERTAIN}

# De-identification tokens ("No XXXX of pleural effusion"): a removed word of unknown role, never
# read as a trigger and transparent to list and scope rules.
DEID_WORDS = frozenset(("xxxx",))
# Words allowed between two mentions of one list ("effusion, or small left pneumothorax").
LIST_WORDS = frozenset(
    "and or nor the a an any of in at on within both either acute focal new definite large small "
    "moderate mild left right bilateral sided significant other residual overt frank discrete "
    "visible visualized appreciable evident obvious gross suspicious".split()
) | DEID_WORDS
# Words that make a list member affirmative after a comma / "and" join ("no pneumothorax, mild
# cardiomegaly"): severity and size words plus change-over-time words.
AFFIRMATIVE = frozenset(
    "trace minimal minimally small mild mildly tiny slight slightly subtle minor moderate moderately large "
    "severe severely marked markedly extensive massive huge sizable sizeable new newly increased increasing "
    "persistent persisting persists improving improved worsening worsened worse enlarging decreased "
    "decreasing developing stable unchanged again redemonstrated residual known evolving progressive "
    "progressing resolving interval continued".split()
)
SIDE_WORDS = frozenset("left right bilateral bilaterally bibasilar bibasal biapical both leftsided rightsided".split())
# Verbs after a list member make it a statement of its own ("no effusion, pneumothorax is seen").
# Between two members only the finite verbs count: a participle there is an adjective of the next
# member ("no large effusion or visualized pneumothorax").
FINITE_VERBS = frozenset("is are was were be been has have remains remain appears appear persist persists shows show demonstrates".split())
VERB_WORDS = FINITE_VERBS | frozenset("seen noted present identified demonstrated visualized appreciated evident".split())
_OR_JOIN = frozenset(("or", "nor", "versus", "vs"))
_AND_JOIN = frozenset(("and", "plus"))


_PUNCT = {";", ":", r"\?(?=\s*[a-z])", r"(?<=[a-z])\?"}


def _alternative(i: int, pat: str, kind: str) -> str:
    body = pat.replace(" ", r"\s+")  # a space matches any whitespace run
    if pat not in _PUNCT:  # whole words only
        body = rf"(?<![a-z0-9]){body}(?![a-z0-9])"
    return f"(?P<{kind}__{i}>{body})"


def _start_words(pat: str) -> frozenset[str]:
    punct = {";": ";", ":": ":"}.get(pat) or ("?" if "\\?" in pat else None)
    return frozenset((punct,)) if punct else literal_words([pat])


# Longest alternative first: a regex alternation takes the first alternative that matches.
_ORDERED = sorted(TRIGGERS, key=lambda t: -len(t[0]))
_TRIGGER_RE = WordAlternation(
    [_alternative(i, p, k) for i, (p, k) in enumerate(_ORDERED)],
    [_start_words(p) for p, _ in _ORDERED],
    [glued_stems(p) for p, _ in _ORDERED],
)


@dataclass(frozen=True)
class Trigger:
    start: int
    end: int
    kind: str


_PUNCT_RE = re.compile(r"[;:?]")


def find_triggers(text_lower: str, start: int, end: int, toks: list[tuple[str, int, int]] | None = None) -> list[Trigger]:
    """Triggers and terminators in text_lower[start:end], in text order (`toks`: its tokens)."""
    if toks is None:
        toks = tokenize(text_lower, start, end)
    # Candidate starts: words that begin some trigger, and the punctuation triggers.
    starts = toks + [(p.group(), p.start(), p.end()) for p in _PUNCT_RE.finditer(text_lower, start, end)]
    starts.sort(key=lambda t: t[1])
    out = []
    for m in _TRIGGER_RE.scan(text_lower, starts, end):
        out.append(Trigger(m.start(), m.end(), m.lastgroup.split("__")[0]))  # type: ignore[union-attr]
    if any(t.kind == PURPOSE for t in out):
        kind = NEG_F if RECOMMENDATION.search(text_lower, start, end) else UNC_F
        out = [Trigger(t.start, t.end, kind) if t.kind == PURPOSE else t for t in out]
    return out


@dataclass
class Span:
    """A mention as the assertion step sees it."""

    start: int
    end: int
    finding: bool  # ABNORMALITY / DISEASE mention (may be negated or hedged)
    clause: bool = False  # a statement of its own ("heart is enlarged", "lungs are clear"): ends a list


GapWords = Callable[[int, int], list[str]]


def assert_mentions(
    spans: list[Span], triggers: list[Trigger], gap_words: GapWords, text_lower: str = ""
) -> list[str]:
    """Assertion (PRESENT / ABSENT / UNCERTAIN) per span of one sentence.

    `gap_words(a, b)` returns the normalised words of the text between two character offsets,
    excluding words inside concept spans (anatomy between two findings does not break a list);
    `text_lower` (the lower-cased text the offsets index) shows the commas that join list members
    (without it, only word joins count). Non-finding spans (anatomy, normal statements) are always
    PRESENT.
    """
    triggers = [t for t in triggers if not any(s.start <= t.start and t.end <= s.end for s in spans)]
    terms = [t for t in triggers if t.kind == TERM]
    result = [PRESENT] * len(spans)
    best = [float("inf")] * len(spans)
    findings = [i for i, s in enumerate(spans) if s.finding]

    def offer(i: int, distance: float, assertion: str) -> None:
        if distance < best[i]:
            best[i], result[i] = distance, assertion

    for t in triggers:
        if t.kind in _FORWARD:
            stop = min((x.start for x in terms if x.start >= t.end), default=float("inf"))
            for i in forward_scope(spans, t.end, stop, gap_words, text_lower):
                offer(i, spans[i].start - t.end, _FORWARD[t.kind])
        if t.kind in _BACKWARD:
            before = [i for i in findings if spans[i].end <= t.start]
            if not before:
                continue
            last = before[-1]
            if any(spans[last].end <= x.start < t.start for x in terms):
                continue
            offer(last, t.start - spans[last].end, _BACKWARD[t.kind])
            for j in reversed(before[:-1]):  # walk back over list members
                if not set(gap_words(spans[j].end, spans[last].start)) <= LIST_WORDS:
                    break
                offer(j, t.start - spans[j].end, _BACKWARD[t.kind])
                last = j
    for i, distance in _or_joined_to_negated_statement(spans, gap_words, text_lower):
        offer(i, distance, ABSENT)
    for t in triggers:
        if t.kind in (LINK, LINK_UNC) and _negated_before(t, spans, findings, triggers, result):
            stop = min((x.start for x in terms if x.start >= t.end), default=float("inf"))
            for i in forward_scope(spans, t.end, stop, gap_words, text_lower):
                best[i], result[i] = -1.0, ABSENT
    return result


def _or_joined_to_negated_statement(spans: list[Span], gap_words: GapWords, text_lower: str) -> list[tuple[int, float]]:
    """Findings joined by "or"/"nor" to a normal statement that is itself a negation ("no acute
    cardiopulmonary disease or pneumothorax"): the statement's "no" lies inside its own span, so
    no trigger reaches them. Returns (span index, distance from the statement)."""
    out: list[tuple[int, float]] = []
    for head in spans:
        if head.finding or not text_lower.startswith("no ", head.start):
            continue
        prev = head
        for i, cur in enumerate(spans):
            if cur.start < prev.end or not cur.finding:
                continue
            words = gap_words(prev.end, cur.start)
            if not (_OR_JOIN.intersection(words) and set(words) <= LIST_WORDS | _OR_JOIN):
                break
            out.append((i, cur.start - head.end))
            prev = cur
    return out


def _negated_before(link: Trigger, spans: list[Span], findings: list[int], triggers: list[Trigger], result: list[str]) -> bool:
    """True when the words before a link are negated: its nearest finding in the same clause is
    absent ("no opacity to suggest pneumonia"), or a forward negation reaches it over no finding
    ("no evidence to suggest pneumonia")."""
    terms = [x for x in triggers if x.kind == TERM and x.end <= link.start]
    floor = terms[-1].end if terms else -1
    before = [i for i in findings if floor <= spans[i].start and spans[i].end <= link.start]
    if before:
        return result[before[-1]] == ABSENT
    return any(x.kind == NEG_F and floor <= x.start and x.end <= link.start for x in triggers)


def forward_scope(spans: list[Span], start: int, stop: float, gap_words: GapWords, text_lower: str) -> list[int]:
    """Indices of the finding spans a forward trigger ending at `start` covers (module docstring):
    the first finding before `stop`, then the list members joined to it."""
    inside = [i for i, s in enumerate(spans) if start <= s.start and s.end <= stop]
    out: list[int] = []
    for pos, i in enumerate(inside):
        s = spans[i]
        if not s.finding and not s.clause:
            continue  # anatomy between list members ("no consolidation in the RLL or effusion")
        if out and (s.clause or not _joins(spans[out[-1]], s, inside[pos + 1 :], spans, gap_words, text_lower)):
            break
        if not s.finding:  # a normal statement ("lungs are clear") is a clause: nothing to cover
            break
        out.append(i)
    return out


def _joins(
    prev: Span, cur: Span, later: list[int], spans: list[Span], gap_words: GapWords, text_lower: str
) -> bool:
    """True when `cur` continues the list `prev` belongs to (see `forward_scope`)."""
    words = gap_words(prev.end, cur.start)
    comma = "," in text_lower[prev.end : cur.start] or "/" in text_lower[prev.end : cur.start]
    if FINITE_VERBS.intersection(words):
        return False
    if _OR_JOIN.intersection(words):
        return True  # negation distributes over "or": "no pneumothorax or large effusion"
    if _followed_by_verb(cur, later, spans, gap_words):
        return False
    if not (comma or _AND_JOIN.intersection(words)):
        return False  # juxtaposed mentions: two statements run together
    if comma and _closes_with_or(cur, later, spans, gap_words):
        return True  # "no consolidation, large effusion, or pneumothorax": one negated list
    own = text_lower[cur.start : cur.end].split()[:1]  # "increased interstitial markings" is one phrase
    if AFFIRMATIVE.intersection(words) or AFFIRMATIVE.intersection(own):
        return False
    if SIDE_WORDS.intersection(words) and not _AND_JOIN.intersection(words):
        # "no effusion, left consolidation" reads affirmative; "no effusion, left pneumothorax, or
        # consolidation" is one negated list
        return _closes_with_or(cur, later, spans, gap_words)
    return True


def _followed_by_verb(cur: Span, later: list[int], spans: list[Span], gap_words: GapWords) -> bool:
    """'..., pneumothorax is seen': a verb right after the member (before the next mention)."""
    end = spans[later[0]].start if later else cur.end + 40
    words = gap_words(cur.end, end)[:2]
    return bool(words) and (words[0] in FINITE_VERBS or (words[0] in ("also", "now") and FINITE_VERBS.intersection(words)))


def _closes_with_or(cur: Span, later: list[int], spans: list[Span], gap_words: GapWords) -> bool:
    prev = cur
    for j in later:
        if not spans[j].finding:
            continue
        if _OR_JOIN.intersection(gap_words(prev.end, spans[j].start)):
            return True
        prev = spans[j]
    return False
