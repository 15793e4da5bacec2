"""The simulated clinical world: a MIMIC-CXR-shaped population of studies.

Real report corpora are long-tailed: a few findings (support devices, effusion, atelectasis,
cardiomegaly, opacity) are common, most are rare, a third of studies are normal, and negations
("no pneumothorax") are everywhere. `SimWorld` draws studies with such a distribution, writes
their reports with the grammar writer and then roughens them like dictated reports (de-identified
tokens, typos, abbreviations, odd spacing, missing sections), so every loader and the whole study
run without real data. Prevalences are approximate orders of magnitude of a large ICU-heavy CXR
archive, chosen by us from general domain knowledge; they are a simulation, not statistics.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from syncxr.records import ABSENT, PRESENT, UNCERTAIN, Entity, typed
from syncxr.vocab import LATERALITY, SEVERITY, ZONE, Concept, Ontology, load_ontology

# Approximate per-study prevalence of a positive mention, by CheXpert-14 label.
LABEL_PREVALENCE = {
    "Support Devices": 0.30,
    "Pleural Effusion": 0.24,
    "Lung Opacity": 0.20,
    "Atelectasis": 0.20,
    "Cardiomegaly": 0.18,
    "Edema": 0.12,
    "Pneumonia": 0.07,
    "Consolidation": 0.05,
    "Pneumothorax": 0.04,
    "Enlarged Cardiomediastinum": 0.03,
    "Lung Lesion": 0.03,
    "Fracture": 0.02,
    "Pleural Other": 0.01,
}
UNLABELLED_TOP = 0.04  # prevalence of the most common concept without a CheXpert label
ZIPF = 1.3  # tail exponent within a label group and among unlabelled concepts
P_UNCERTAIN = 0.12  # share of positive mentions that are hedged
# Findings radiologists most often state as absent in a study that lacks them.
NEGATION_RATE = {"Pneumothorax": 0.6, "Pleural Effusion": 0.55, "Consolidation": 0.35, "Edema": 0.15}
# Conditional boosts: a study with the key label makes the listed ones more likely.
CO_OCCUR = {"Edema": {"Cardiomegaly": 3.0, "Pleural Effusion": 2.5}, "Pneumonia": {"Lung Opacity": 2.0}}


@dataclass
class Study:
    study_id: int
    subject_id: int
    entities: list[Entity]
    positives: list[str] = field(default_factory=list)  # concept names drawn present/uncertain
    view: str = "PA"


def concept_prevalence(ontology: Ontology) -> dict[str, float]:
    """Per-concept prevalence: a label's prevalence shared among its concepts by a Zipf law in
    ontology order; unlabelled abnormal concepts get a Zipf tail of their own."""
    out: dict[str, float] = {}
    groups: dict[str, list[Concept]] = {}
    tail: list[Concept] = []
    for c in ontology.concepts:
        if c.type not in ("ABNORMALITY", "DISEASE"):
            continue
        if c.chexpert in LABEL_PREVALENCE:
            groups.setdefault(c.chexpert, []).append(c)
        elif c.chexpert is None:
            tail.append(c)
    for label, concepts in groups.items():
        w = np.array([1.0 / (r + 1) ** ZIPF for r in range(len(concepts))])
        for c, p in zip(concepts, LABEL_PREVALENCE[label] * w / w.sum() * min(len(concepts), 2)):
            out[c.name] = float(min(p, 0.5))
    for r, c in enumerate(tail):
        out[c.name] = UNLABELLED_TOP / (r + 1) ** ZIPF
    return out


class SimWorld:
    """Draws studies; deterministic for a seed."""

    def __init__(self, ontology: Ontology | None = None, seed: int = 0) -> None:
        self.ontology = ontology or load_ontology()
        self.prevalence = concept_prevalence(self.ontology)
        self.rng = np.random.default_rng(seed)
        self._by_name = self.ontology.by_name
        self._normals = [c for c in self.ontology.concepts if c.type == "NON-ABNORMALITY"]
        self._anatomy = [c for c in self.ontology.concepts if c.type == "ANATOMY"]
        w = np.array([1.0 / (r + 1) ** ZIPF for r in range(len(self._anatomy))])
        self._anatomy_p = w / w.sum() if len(w) else w
        self._negatable_by_label = self._first_negatable_per_label()

    def _first_negatable_per_label(self) -> dict[str, Concept]:
        out: dict[str, Concept] = {}
        for c in self.ontology.concepts:
            if c.negatable and c.chexpert in NEGATION_RATE and c.chexpert not in out:
                out[c.chexpert] = c
        return out

    def study(self, study_id: int, subject_id: int) -> Study:
        positives = self._draw_positives()
        ents = [self._mention(self._by_name[n]) for n in positives]
        labels_pos = {self._by_name[n].chexpert for n in positives}
        # The image draws every positive concept's `render`; a report must not deny what its image
        # shows ("pneumonia" and "aspiration" are drawn as consolidation, so "no consolidation"
        # beside them labels a consolidated lung as clear: issue 7).
        drawn = {self._by_name[n].render for n in positives} - {None}
        for label, concept in self._negatable_by_label.items():
            if label in labels_pos or concept.render in drawn:
                continue
            if self.rng.random() < NEGATION_RATE[label]:
                ents.append(Entity(concept.name, typed(concept.type, ABSENT), ABSENT))
        if not positives:
            ents += self._normal_statements()
        ents += self._anatomy_mentions()
        view = "AP" if "Support Devices" in labels_pos or self.rng.random() < 0.3 else "PA"
        return Study(study_id, subject_id, self._drop_conflicts(ents), positives, view)

    def _draw_positives(self) -> list[str]:
        names = list(self.prevalence)
        p = np.array([self.prevalence[n] for n in names])
        # A third of studies are normal; the rest draw findings independently, with co-occurrence boosts.
        if self.rng.random() < 0.33:
            return []
        hit = self.rng.random(len(p)) < p * 1.5
        chosen = [n for n, h in zip(names, hit) if h]
        labels = {self._by_name[n].chexpert for n in chosen}
        for key, boosts in CO_OCCUR.items():
            if key in labels:
                for n, prob in zip(names, p):
                    if self._by_name[n].chexpert in boosts and n not in chosen:
                        if self.rng.random() < min(prob * boosts[self._by_name[n].chexpert], 0.9):
                            chosen.append(n)
        return chosen[:6]

    def _mention(self, c: Concept) -> Entity:
        assertion = UNCERTAIN if self.rng.random() < P_UNCERTAIN else PRESENT
        attrs: dict[str, str] = {}
        if "laterality" in c.attributes and self.rng.random() < 0.7:
            attrs["laterality"] = str(self.rng.choice(LATERALITY))
        if "severity" in c.attributes and self.rng.random() < 0.6:
            attrs["severity"] = str(self.rng.choice(SEVERITY))
        if "zone" in c.attributes and self.rng.random() < 0.4:
            attrs["zone"] = str(self.rng.choice(ZONE))
        return Entity(c.name, typed(c.type, assertion), assertion, attrs)

    def _anatomy_mentions(self) -> list[Entity]:
        """0-2 structures named in the report (long-tailed: lungs and heart far more than the lingula)."""
        if not self._anatomy:
            return []
        k = int(self.rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25]))
        idx = self.rng.choice(len(self._anatomy), size=min(k, len(self._anatomy)), replace=False, p=self._anatomy_p)
        return [Entity(self._anatomy[i].name, "ANATOMY", PRESENT) for i in sorted(idx)]

    def _normal_statements(self) -> list[Entity]:
        if not self._normals:
            return []
        k = int(self.rng.integers(1, min(3, len(self._normals)) + 1))
        idx = self.rng.choice(len(self._normals), size=k, replace=False)
        return [Entity(self._normals[i].name, self._normals[i].type, PRESENT) for i in sorted(idx)]

    def _drop_conflicts(self, ents: list[Entity]) -> list[Entity]:
        from syncxr.vocab.conflicts import Conflicts

        conflicts = Conflicts(self.ontology)
        kept: list[Entity] = []
        for e in ents:
            if all(e.name != k.name and not conflicts.conflict(e.key, k.key) for k in kept):
                kept.append(e)
        return kept


# --- making text look dictated ---------------------------------------------------------------

ABBREVIATIONS = {
    "pneumothorax": "PTX",
    "endotracheal tube": "ETT",
    "right lower lobe": "RLL",
    "left lower lobe": "LLL",
    "costophrenic angle": "CP angle",
    "nasogastric tube": "NG tube",
}


def roughen(text: str, rng: random.Random, p_typo: float = 0.03, p_abbrev: float = 0.3) -> str:
    """Typos (adjacent swaps in long words), abbreviations, odd spacing and case, de-id tokens."""
    for full, short in ABBREVIATIONS.items():
        if full in text and rng.random() < p_abbrev:
            text = text.replace(full, short, 1)
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) >= 7 and w.isalpha() and rng.random() < p_typo:
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    text = " ".join(words)
    if rng.random() < 0.2:
        text = text.replace(". ", ".  ", 1)
    if rng.random() < 0.1:
        text = text.replace(". ", ".\n ", 1)
    if rng.random() < 0.05:
        text = text.upper()
    return text


def mimic_report(findings: str, impression: str, rng: random.Random) -> str:
    """A free-text report in the MIMIC-CXR style (sections may be missing)."""
    indication = rng.choice(["___ with cough", "Shortness of breath.", "___F with fever, r/o pneumonia",
                             "Line placement.", "Chest pain.", "Evaluate for interval change."])
    parts = ["                                 FINAL REPORT",
             " EXAMINATION:  CHEST (PA AND LAT)" if rng.random() < 0.6 else " EXAMINATION:  CHEST (PORTABLE AP)",
             "",
             f" INDICATION:  {indication}",
             "",
             f" COMPARISON:  {rng.choice(['___', 'None.', 'Chest radiograph from XXXX.'])}",
             ""]
    if rng.random() > 0.08:  # some studies have an impression only
        parts += [" FINDINGS:", " ", " " + findings, ""]
    if rng.random() > 0.03:  # and a few a findings section only
        parts += [" IMPRESSION:", " ", " " + impression, ""]
    return "\n".join(parts)
