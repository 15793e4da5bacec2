"""English helpers of the grammar writer: noun heads, number, articles, template rendering.

Kept apart from grammar_writer.py (which plans a report) because they know nothing of entities: they
turn a noun phrase into "a small effusion" / "bilateral effusions" / "There are ..." by rules
whose word lists come from grammar/phrases.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_HEAD_STOP = ("of", "in", "with", "under", "at", "along", "beneath", "to", "on", "within", "terminating", "projecting", "extending", "bilaterally")
_STEM_STOP = frozenset("the left right both bilateral lower upper middle mid lobe lobes and of".split())
_VOWEL_SOUND_LETTERS = set("aefhilmnorsx")  # letters whose English name starts with a vowel sound


@dataclass
class Mention:
    """A written noun phrase with its grammatical number and the article it takes."""

    text: str
    synonym: str  # the ontology synonym inside it (templates may be restricted by it)
    plural: bool = False
    article: str = ""  # "", "a" or "an"

    @property
    def be(self) -> str:
        return "are" if self.plural else "is"

    @property
    def with_article(self) -> str:
        return f"{self.article} {self.text}" if self.article else self.text


class Nouns:
    """Number and article rules over the word lists of the phrases file."""

    def __init__(self, p: dict[str, Any]) -> None:
        self.mass = {w.lower() for w in p.get("mass_nouns", [])}
        self.plurals = {w.lower() for w in p.get("plurals", [])}
        self.irregular = {k.lower(): v for k, v in (p.get("irregular_plurals") or {}).items()}
        self.no_plural = {w.lower() for w in p.get("no_plural", [])}
        self.acronyms = {w.lower() for w in p.get("acronyms", [])}
        self.countable_acronyms = {w.lower() for w in p.get("countable_acronyms", [])}

    @staticmethod
    def head_index(words: list[str]) -> int:
        """Index of the head noun: the last word before "of" / "in" / "with" ..."""
        for i, w in enumerate(words):
            if i > 0 and w.lower() in _HEAD_STOP:
                return i - 1
        return len(words) - 1

    def is_plural_word(self, word: str) -> bool:
        w = word.lower()
        return w in self.plurals or (w.endswith("s") and not w.endswith(("ss", "is", "us")) and w not in self.mass)

    def is_mass(self, word: str) -> bool:
        w = word.lower()
        if w in self.acronyms:
            return w not in self.countable_acronyms
        return w in self.mass or w.endswith(("osis", "itis", "ectasis"))

    def pluralize(self, phrase: str) -> tuple[str, bool]:
        """(phrase with a plural head, whether it reads plural). Mass nouns stay as they are;
        plurals follow the extractor's folding rules (lexicon._plurals) so they read back."""
        words = phrase.split()
        i = self.head_index(words)
        head = words[i]
        low = head.lower()
        if self.is_plural_word(head):
            return phrase, True
        if self.is_mass(head) or low in self.no_plural or low in self.acronyms:
            return phrase, False
        if low in self.irregular:
            words[i] = self.irregular[low]
        elif low.endswith("y") and len(low) > 2 and low[-2] not in "aeiou":
            words[i] = head[:-1] + "ies"
        elif low.endswith(("s", "x", "ch", "sh")):
            words[i] = head + "es"
        else:
            words[i] = head + "s"
        return " ".join(words), True

    def number(self, phrase: str) -> bool:
        """True when a noun phrase reads plural ("markings in the LUL" -> True, "both hila" -> True)."""
        words = phrase.split()
        return words[0].lower() == "both" or self.is_plural_word(words[self.head_index(words)])

    def article(self, phrase: str, plural: bool, noun: str = "") -> str:
        """'a' / 'an' for a singular count noun phrase, '' otherwise (`noun`: the part of the
        phrase that holds its head, when the phrase goes on: "tube terminating in the ...")."""
        words = phrase.split()
        head_words = (noun or phrase).split()
        if plural or self.is_mass(head_words[self.head_index(head_words)]):
            return ""
        first = words[0].lower()
        if first in self.acronyms:
            return "an" if first[0] in _VOWEL_SOUND_LETTERS else "a"
        if first[0] in "aeiou" and not first.startswith(("uni", "use", "eu", "one")):
            return "an"
        return "a"

    def mention(self, text: str, synonym: str, plural: bool | None = None) -> Mention:
        plural = self.number(text) if plural is None else plural
        return Mention(text, synonym, plural, self.article(text, plural))


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def join_list(items: list[str]) -> str:
    """['a'] -> 'a'; ['a', 'b'] -> 'a or b'; ['a', 'b', 'c'] -> 'a, b, or c'."""
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


def templates_for(options: list[Any], synonym: str) -> list[str]:
    """The templates of `options` usable with `synonym`: plain strings, and {tpl, syn} mappings
    whose `syn` regex matches it."""
    out = []
    for o in options:
        if isinstance(o, str):
            out.append(o)
        elif re.search(o["syn"], synonym.lower()):
            out.append(o["tpl"])
    return out


def render(template: str, m: Mention) -> str:
    """Fill a sentence template with one mention (phrases.yaml header: placeholders)."""
    return squash(template.format(m=m.text, M=cap(m.text), am=m.with_article, AM=cap(m.with_article), be=m.be))


def squash(s: str) -> str:
    """Collapse the double spaces an empty slot leaves ("in the  lower zone")."""
    return re.sub(r" {2,}", " ", s).strip()


def word_pattern(words: list[str]) -> re.Pattern[str]:
    """Whole-word regex for system words (a trailing * makes a prefix; plural s allowed)."""
    alts = [re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) + "s?" for w in words]
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b")


def alternation(phrases: list[str]) -> re.Pattern[str] | None:
    """A whole-word regex matching any of `phrases`, longest first (so "right lung" beats "lung")."""
    if not phrases:
        return None
    ordered = sorted({p.lower() for p in phrases}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, ordered)) + r")\b", re.IGNORECASE)


def shares_stem(a: str, b: str) -> bool:
    """True when two phrases share a content word stem ("lung mass" in the "right lung")."""
    stems = lambda s: {w[:3] for w in re.findall(r"[a-z]+", s.lower()) if len(w) > 3 and w not in _STEM_STOP}  # noqa: E731
    return bool(b) and bool(stems(a) & stems(b))
