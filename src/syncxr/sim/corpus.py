"""Write the simulated world's corpus: a reports CSV, or a MIMIC-CXR-JPG-shaped folder.

MIMIC-CXR-JPG layout written by `write_mimic` (the parts syncxr reads):

    files/p10/p10000032/s50414267/<dicom_id>.jpg     images (8-bit JPEG)
    files/p10/p10000032/s50414267.txt                free-text report (as in mimic-cxr-reports)
    mimic-cxr-2.0.0-metadata.csv                     dicom_id, subject_id, study_id, ViewPosition, Rows, Columns, ...
    mimic-cxr-2.0.0-split.csv                        dicom_id, study_id, subject_id, split
    mimic-cxr-2.0.0-chexpert.csv                     subject_id, study_id, 14 labels (1.0 / 0.0 / -1.0 / blank)

A share of the images is low quality (rotated, over/under-exposed, collimated, noisy...), as in
real archives; `quality` in a sidecar CSV says which (real MIMIC has no such column).
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from syncxr.data.shards import write_csv_atomic, write_text_atomic
from syncxr.records import CHEXPERT14, PRESENT, UNCERTAIN, derive_seed
from syncxr.sim.world import SimWorld, Study, mimic_report, roughen
from syncxr.vocab import Ontology, load_ontology

P_LOW_QUALITY = 0.06


def iter_reports(n: int, seed: int = 0, ontology: Ontology | None = None) -> Iterator[tuple[Study, str, str]]:
    """(study, findings, impression) for n simulated studies, roughened like dictated text."""
    from syncxr.text.grammar_writer import GrammarWriter

    ontology = ontology or load_ontology()
    world = SimWorld(ontology, seed)
    writer = GrammarWriter(ontology, filler=True)
    rng = random.Random(seed)
    for i in range(n):
        study = world.study(50_000_000 + i, 10_000_000 + i // 3)
        findings, impression = writer.write(study.entities, derive_seed(seed, f"sim-{i}"))
        yield study, roughen(findings, rng), roughen(impression, rng)


def write_reports_csv(path: str | Path, n: int, seed: int = 0) -> Path:
    """A CSV (uid, findings, impression) of simulated reports: a stand-in reference corpus."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["uid", "findings", "impression"])
    for study, findings, impression in iter_reports(n, seed):
        w.writerow([f"s{study.study_id}", findings, impression])
    write_text_atomic(buf.getvalue(), Path(path))
    return Path(path)


def sim_reference_counts(n: int, seed: int, extractor) -> dict[str, int]:
    """Entity-key counts over n simulated reports read by the extractor (a key once per report)."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for _, findings, impression in iter_reports(n, seed):
        keys = {e.key for e in extractor.extract(findings, "findings")}
        keys |= {e.key for e in extractor.extract(impression, "impression")}
        counts.update(keys)
    return dict(counts)


def _labels_of(study: Study, ontology: Ontology) -> dict[str, str]:
    """CheXpert-style labels of a study as the world drew them (truth, not a labeler's output)."""
    by_name = ontology.by_name
    out: dict[str, str] = {}
    for e in study.entities:
        label = by_name[e.name].chexpert
        if label is None:
            continue
        val = {PRESENT: "1.0", UNCERTAIN: "-1.0"}.get(e.assertion, "0.0")
        if out.get(label) != "1.0":
            out[label] = val
    if not study.positives:
        out["No Finding"] = "1.0"
    return out


def _image(study: Study, ontology: Ontology, seed: int, size: int) -> tuple[np.ndarray, str]:
    from syncxr.image.phantom import render_phantom
    from syncxr.qc.defects import DEFECTS, apply_defect
    from syncxr.image.phantom.spec import FindingSpec

    by_name = ontology.by_name
    specs, seen = [], set()
    for e in study.entities:
        c = by_name[e.name]
        if c.render and e.assertion in (PRESENT, UNCERTAIN) and c.render not in seen:
            seen.add(c.render)
            a = e.attributes
            specs.append(FindingSpec(c.render, a.get("laterality"), a.get("severity"), a.get("zone")))
    img = render_phantom(specs, seed=seed, size=size).image
    rng = np.random.default_rng(seed)
    if rng.random() < P_LOW_QUALITY:
        defect = str(rng.choice(DEFECTS))
        return apply_defect(img, defect, rng), defect
    return img, "ok"


def write_mimic(out: str | Path, n_studies: int, seed: int = 0, size: int = 256,
                split_fracs: tuple[float, float] = (0.9, 0.05)) -> Path:
    """A MIMIC-CXR-JPG-shaped folder of n simulated studies (one frontal image each)."""
    out = Path(out)
    ontology = load_ontology()
    meta, split, chex, quality = [], [], [], []
    for i, (study, findings, impression) in enumerate(iter_reports(n_studies, seed, ontology)):
        subj, sid = study.subject_id, study.study_id
        folder = out / "files" / f"p{str(subj)[:2]}" / f"p{subj}"
        dicom = hashlib.sha1(f"{seed}-{sid}".encode()).hexdigest()[:8] + "-" + hashlib.sha1(f"{sid}".encode()).hexdigest()[:8]
        img, q = _image(study, ontology, derive_seed(seed, f"sim-img-{i}"), size)
        (folder / f"s{sid}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"s{sid}" / f"{dicom}.jpg", quality=92)
        (folder / f"s{sid}.txt").write_text(mimic_report(findings, impression, random.Random(sid)))
        meta.append([dicom, subj, sid, "CHEST (PA AND LAT)", study.view, size, size, 21800101, 120000.0,
                     "CHEST (PA AND LAT)", "postero-anterior" if study.view == "PA" else "antero-posterior", "Erect"])
        r = (subj * 2654435761 % 1000) / 1000  # split by subject, so no patient is in two splits
        s = "train" if r < split_fracs[0] else "validate" if r < sum(split_fracs) else "test"
        split.append([dicom, sid, subj, s])
        labels = _labels_of(study, ontology)
        chex.append([subj, sid] + [labels.get(lab, "") for lab in CHEXPERT14])
        quality.append([dicom, q])
    write_csv_atomic(out / "mimic-cxr-2.0.0-metadata.csv",
         ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
          "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
          "PatientOrientationCodeSequence_CodeMeaning"], meta)
    write_csv_atomic(out / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"], split)
    write_csv_atomic(out / "mimic-cxr-2.0.0-chexpert.csv", ["subject_id", "study_id", *CHEXPERT14], chex)
    write_csv_atomic(out / "sim-quality.csv", ["dicom_id", "quality"], quality)
    return out

