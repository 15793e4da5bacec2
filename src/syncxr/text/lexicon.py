"""The compiled lexicon of the built-in extractor: concept phrases, patterns, typos, attribute words.

Matching is token based: text is lower-cased and cut into ``[a-z0-9]+`` tokens (so "left-sided"
is "left sided" and any run of spaces, newlines or punctuation separates words). Each input
token is normalised before lookup, in this order:

1. a token of the lexicon vocabulary stays as it is, except that
2. a plural of a vocabulary token maps to it ("effusions" -> "effusion", "opacities" -> "opacity";
   synonyms are stored in the same canonical form, so "interstitial opacities" matches too);
3. a token of >= 7 characters within one edit (insert, delete, substitute, swap) of exactly one
   vocabulary token with the same first letter maps to it ("pnuemothorax", "cardiomegally").

Concept phrases (synonyms) are looked up longest-first at every token; ontology ``patterns``
(regexes, a space matching any whitespace run) run over the lower-cased text. Overlaps are
resolved longest-first (then leftmost). Zone phrases such as "lower lung zone" are matched as
attribute-only phrases so that their "lung" is not read as the lung ANATOMY.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from syncxr.vocab import Ontology

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"[a-z0-9]+")
MIN_TYPO_LEN = 7
# Ordinary report words one edit away from a lexicon word: never "corrected" ("interval" is not
# a typo of "internal").
NEVER_CORRECT = frozenset(
    "interval intervals ventral arterial partial central lateral mineral neutral injection injections".split()
)
ATTR_ONLY = ""  # concept id of attribute-only phrases ("upper lung zone")

# Attribute words (normalised tokens) -> (kind, value) pairs. Values are vocab.LATERALITY /
# SEVERITY / ZONE / COUNT members. Size words (small / large) are folded into the severity scale.
ATTRIBUTE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    **{w: (("laterality", "left"),) for w in ("left", "leftsided", "levo")},
    **{w: (("laterality", "right"),) for w in ("right", "rightsided")},
    **{w: (("laterality", "bilateral"),) for w in ("bilateral", "bilaterally", "both", "bilat")},
    **{w: (("laterality", "bilateral"), ("zone", "lower")) for w in ("bibasilar", "bibasal", "bibasally")},
    "biapical": (("laterality", "bilateral"), ("zone", "upper")),
    **{
        w: (("severity", "mild"),)
        for w in ("trace", "minimal", "minimally", "small", "mild", "mildly", "tiny", "slight", "slightly", "subtle", "minor", "borderline")
    },
    **{w: (("severity", "moderate"),) for w in ("moderate", "moderately")},
    **{
        w: (("severity", "severe"),)
        for w in ("large", "severe", "severely", "marked", "markedly", "extensive", "massive", "huge", "sizable", "sizeable")
    },
    **{w: (("zone", "upper"),) for w in ("apical", "apex", "apices", "upper", "apically", "apicolateral")},
    **{w: (("zone", "middle"),) for w in ("mid", "middle", "perihilar", "midlung")},
    **{w: (("zone", "lower"),) for w in ("basilar", "basal", "base", "lower", "basally", "basilarly", "infrahilar")},
    # COUNT: a number word before a countable finding ("two nodules", "a solitary nodule"); a
    # plural noun with no number word reads "multiple" (lexicon_extractor._bind_attributes)
    **{w: (("count", "single"),) for w in ("single", "solitary")},
    **{w: (("count", "two"),) for w in ("two", "pair")},
    **{
        w: (("count", "multiple"),)
        for w in ("multiple", "several", "numerous", "innumerable", "few", "three", "four", "five", "six", "multifocal")
    },
}

# Attribute-only phrases: consumed so that their words are not read as concepts.
ZONE_PHRASES = [
    f"{z} {lung}zone{s}"
    for z in ("upper", "mid", "middle", "lower", "both upper", "both lower")
    for lung in ("", "lung ")
    for s in ("", "s")
] + ["lung zone", "lung zones"]


@dataclass(frozen=True)
class Match:
    """A concept mention: character span in the text, concept id, and how it was found."""

    start: int
    end: int
    concept: str  # ontology concept name, or ATTR_ONLY for an attribute-only phrase
    pattern: bool  # found by an ontology regex (its span may hold attribute words)
    words: int = 1  # number of tokens covered (overlaps are resolved by it first)


def tokenize(text_lower: str, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(token, start, end) for each word of text_lower[start:end] (spans in the full text)."""
    return [(m.group(), m.start(), m.end()) for m in TOKEN_RE.finditer(text_lower, start, len(text_lower) if end is None else end)]


_LOOKBEHIND = re.compile(r"\(\?<[=!][^)]*\)")


_GLUED = re.compile(r"([a-z0-9]+)[(\[]")


def glued_stems(pattern: str) -> frozenset[str]:
    """Word stems written right before a group or class ("elevat(?:ed|ion)"): a match may start
    at a longer word."""
    return frozenset(_GLUED.findall(_LOOKBEHIND.sub("", pattern.lower())))


def literal_words(patterns: list[str]) -> frozenset[str]:
    """Every word written literally in some regex: a match can only start at one of them. A word
    whose last letter is optional ("suggests?") is listed in both forms; look-behind text
    ("(?<=to\\s)") is context, not a start."""
    words = set()
    for p in patterns:
        for w in re.findall(r"[a-z0-9]+\??", _LOOKBEHIND.sub("", p.lower())):
            words.add(w.rstrip("?"))
            if w.endswith("?"):
                words.add(w[:-2])
    return frozenset(words)


class WordAlternation:
    """An ordered alternation of regex alternatives, tried only at tokens that can start a match.

    A match of an alternative can only start at one of its literal words (`literal_words`), or at
    a word that extends one of its word stems glued to a group ("elevat(?:ed|ion)"), so at a token
    w only those alternatives are tried, in their original order: the result is that of the whole
    alternation tried at every candidate word, at a fraction of the cost (one small regex per
    start word, all compiled up front). `keys[i]`: the literal words of alternative i; `stems[i]`:
    its glued stems.
    """

    def __init__(
        self,
        alternatives: list[str],
        keys: list[frozenset[str]],
        stems: list[frozenset[str]] | None = None,
        prefix: str = "",
        suffix: str = "",
        flags: int = 0,
    ) -> None:
        self._alts, self._prefix, self._suffix, self._flags = alternatives, prefix, suffix, flags
        stems = stems or [frozenset()] * len(alternatives)
        self.words = frozenset(w for ks in keys for w in ks)
        by_word = {
            w: [i for i, (ks, st) in enumerate(zip(keys, stems)) if w in ks or any(w.startswith(x) for x in st)]
            for w in self.words
        }
        # Compiled up front: a lazy compile would land inside the first reports' timing.
        self._compiled = {w: self._compile(idx) for w, idx in by_word.items()}

    def _compile(self, idx: list[int]) -> re.Pattern[str]:
        body = "|".join(self._alts[i] for i in idx)
        return re.compile(f"{self._prefix}(?:{body}){self._suffix}", self._flags)

    def regex_for(self, word: str) -> re.Pattern[str]:
        return self._compiled[word]

    def scan(self, low: str, toks: list[tuple[str, int, int]], end: int) -> list[re.Match[str]]:
        """Non-overlapping matches starting at the tokens `toks` of `low` (spans in `low`)."""
        out: list[re.Match[str]] = []
        taken = -1
        for tok, s, _ in toks:
            if s < taken or tok not in self.words:
                continue
            m = self.regex_for(tok).match(low, s, end)
            if m is not None:
                out.append(m)
                taken = m.end()
        return out


def safe_lower(text: str) -> str:
    """Lower-case without changing the length (a few Unicode letters grow when lower-cased)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _plurals(word: str) -> list[str]:
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        return [word[:-1] + "ies", word + "s"]
    if word.endswith(("s", "x", "ch", "sh")):
        return [word + "es"]
    if word.endswith("um"):
        return [word[:-2] + "a", word + "s"]
    return [word + "s"]


def _canonical_forms(raw: set[str]) -> dict[str, str]:
    """token -> canonical form for every vocabulary token and every plural of one: a plural maps
    to its singular when the singular is also in the vocabulary ("opacities" -> "opacity")."""
    singular = {p: w for w in sorted(raw) for p in _plurals(w) if p != w}
    canon = {w: singular.get(w, w) if singular.get(w) in raw else w for w in raw}
    for p, w in singular.items():
        canon.setdefault(p, canon[w])
    return canon


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _to_regex(pattern: str) -> str:
    # A space in an ontology pattern matches any whitespace run (odd spacing, line wraps); an
    # optional space (" ?") matches an optional run.
    return pattern.replace(" ?", r"\s*").replace(" ", r"\s+")


class Lexicon:
    """Everything the extractor needs from one ontology, compiled once (see the module docstring)."""

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self.concepts = ontology.by_name
        phrases = [(syn, c.name) for c in ontology.concepts for syn in c.synonyms]
        phrases += [(z, ATTR_ONLY) for z in ZONE_PHRASES]
        raw = {t for p, _ in phrases for t in TOKEN_RE.findall(p.lower())} | set(ATTRIBUTE_WORDS)
        self._canon = _canonical_forms(raw)
        self.vocab = raw
        self.phrases: dict[tuple[str, ...], str] = {}
        self.collisions: list[tuple[str, str, str]] = []  # (phrase, kept owner, dropped owner)
        for phrase, concept in phrases:
            self._add_phrase(phrase, concept)
        # first token -> phrase lengths starting with it, longest first (the lookup tries only these)
        lengths: dict[str, set[int]] = {}
        for k in self.phrases:
            lengths.setdefault(k[0], set()).add(len(k))
        self.lengths = {t: sorted(ls, reverse=True) for t, ls in lengths.items()}
        self.anatomy = frozenset(c.name for c in ontology.concepts if c.type == "ANATOMY")
        self._norm_cache: dict[str, str] = {}
        self._typo_index = self._build_typo_index()
        self.pattern_re, self.pattern_concepts = self._compile_patterns(ontology)

    def _add_phrase(self, phrase: str, concept: str) -> None:
        key = tuple(self._canon.get(t, t) for t in TOKEN_RE.findall(phrase.lower()))
        if not key:
            return
        owner = self.phrases.get(key)
        if owner is not None and owner != concept:
            log.warning("phrase %r belongs to %r and %r; keeping %r", phrase, owner, concept, owner)
            self.collisions.append((phrase, owner, concept))
            return
        self.phrases[key] = concept

    def _build_typo_index(self) -> dict[str, set[str]]:
        index: dict[str, set[str]] = {}
        for w in self.vocab:
            if len(w) < MIN_TYPO_LEN - 1 or w.isdigit():
                continue
            for d in _deletes(w) | {w}:
                index.setdefault(d, set()).add(w)
        return index

    @staticmethod
    def _compile_patterns(ontology: Ontology) -> tuple[WordAlternation | None, list[str]]:
        alts, owners = [], []
        # Longer patterns first: a regex alternation takes the first alternative that matches.
        items = sorted(((p, c.name) for c in ontology.concepts for p in c.patterns), key=lambda x: -len(x[0]))
        for i, (pat, name) in enumerate(items):
            try:
                re.compile(pat)
            except re.error as e:
                raise ValueError(f"concept {name!r}: bad pattern {pat!r}: {e}") from None
            alts.append(f"(?P<p{i}>{_to_regex(pat)})")
            owners.append(name)
        if not alts:
            return None, []
        keys = [literal_words([pat]) for pat, _ in items]
        stems = [glued_stems(pat) for pat, _ in items]
        return WordAlternation(alts, keys, stems, r"(?<![a-z0-9])", r"(?![a-z0-9])", re.IGNORECASE), owners

    def normalize(self, tok: str) -> str:
        """Canonical vocabulary form of one lower-case token (module docstring, rules 1-3)."""
        hit = self._norm_cache.get(tok)
        if hit is not None:
            return hit
        out = self._canon.get(tok)
        if out is None:
            typo_ok = len(tok) >= MIN_TYPO_LEN and not tok.isdigit() and tok not in NEVER_CORRECT
            fixed = self._correct(tok) if typo_ok else None
            out = self._canon[fixed] if fixed else tok
        if len(self._norm_cache) < 100_000:  # bounded: free text has an open vocabulary
            self._norm_cache[tok] = out
        return out

    def _correct(self, tok: str) -> str | None:
        cands: set[str] = set()
        for d in _deletes(tok) | {tok}:
            cands |= self._typo_index.get(d, set())
        cands = {c for c in cands if c[0] == tok[0] and _within_one_edit(tok, c)}
        return next(iter(cands)) if len(cands) == 1 else None

    def find(
        self, text_lower: str, start: int, end: int, toks: list[tuple[str, int, int]] | None = None
    ) -> list[Match]:
        """Non-overlapping concept mentions in text_lower[start:end], in text order
        (`toks`: the tokens of that range, when the caller already has them)."""
        if toks is None:
            toks = tokenize(text_lower, start, end)
        norms = [self.normalize(t) for t, _, _ in toks]
        cands: list[Match] = []
        n = len(toks)
        for i in range(n):
            for length in self.lengths.get(norms[i], ()):
                if i + length > n:
                    continue
                concept = self.phrases.get(tuple(norms[i : i + length]))
                if concept is not None:
                    cands.append(Match(toks[i][1], toks[i + length - 1][2], concept, False, length))
                    break
        if self.pattern_re is not None:
            for m in self.pattern_re.scan(text_lower, toks, end):
                idx = int(m.lastgroup[1:])  # type: ignore[index]
                words = len(TOKEN_RE.findall(text_lower, m.start(), m.end()))
                cands.append(Match(m.start(), m.end(), self.pattern_concepts[idx], True, words))
        return _longest_first(cands, self.anatomy)


def _within_one_edit(a: str, b: str) -> bool:
    """True when a and b differ by one insertion, deletion, substitution or adjacent swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if la < lb else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _longest_first(cands: list[Match], anatomy: frozenset[str]) -> list[Match]:
    """Greedy non-overlapping selection: most words first, then a finding over an anatomy phrase
    ("left lung mass" is a left mass, not the left lung), then most characters, then leftmost;
    result in text order."""
    chosen: list[Match] = []
    taken: list[tuple[int, int]] = []
    for m in sorted(cands, key=lambda m: (-m.words, m.concept in anatomy, m.start - m.end, m.start)):
        if all(m.end <= s or m.start >= e for s, e in taken):
            chosen.append(m)
            taken.append((m.start, m.end))
    return sorted(chosen, key=lambda m: m.start)
