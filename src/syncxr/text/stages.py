"""Text stages: write + verify (with rewrites) and CheXpert labelling.

Sampling is global (the balanced sampler's caps span all reports), so the runner samples before
sharding with `syncxr.text.sample.BalancedSampler` and these stages start from `sample.entities`.
"""

from __future__ import annotations

import logging
from typing import Callable, ClassVar, Optional

from syncxr.errors import InfrastructureError, SampleError, UserError
from syncxr.stage import live
from syncxr.records import Sample, derive_seed
from syncxr.text.base import ReportWriter
from syncxr.text.labels import chexpert_vector
from syncxr.text.verify import Verifier
from syncxr.vocab import Ontology

log = logging.getLogger(__name__)

# entities (+ ontology) -> {label column: 1.0 / 0.0 / -1.0 / None}
Labeller = Callable[..., dict[str, Optional[float]]]


class WriteVerifyStage:
    """Write FINDINGS/IMPRESSION from `sample.entities`, verify, rewrite up to `max_attempts`.

    Attempt i (0-based) uses seed derive_seed(sample.seed, sample_id, "write") and `attempt=i`; a failed
    attempt appends "write#{i+1}: reason detail" to `sample.history`. After the last failed attempt the
    sample is rejected ("verify_mismatch"); a writer exception rejects it ("writer_error").
    The report of the last attempt is kept on a rejected sample, for inspection.
    """

    name: ClassVar[str] = "write"
    requires: ClassVar[tuple[str, ...]] = ("entities",)
    provides: ClassVar[tuple[str, ...]] = ("findings", "impression", "extracted", "write_attempts")

    def __init__(self, writer: ReportWriter, verifier: Verifier, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise UserError(f"write stage: max_attempts must be >= 1, got {max_attempts}")
        if verifier.mode == "exact" and writer.adds_filler:
            raise UserError(
                "write stage: verifier mode 'exact' requires every entity of the report to be a sampled "
                "one, but the writer adds filler statements (filler=True); build the writer with "
                "filler=False or use verifier mode 'impression'"
            )
        self.writer, self.verifier, self.max_attempts = writer, verifier, max_attempts

    def process(self, batch: list[Sample]) -> list[Sample]:
        for sample in live(batch):
            self._one(sample)
        return batch

    def _one(self, sample: Sample) -> None:
        sample.backends[self.name] = self.writer.backend_id
        seed = derive_seed(sample.seed, sample.sample_id, "write")
        detail = ""
        for attempt in range(self.max_attempts):
            sample.write_attempts = attempt + 1
            feedback = detail if self.writer.uses_feedback and attempt > 0 else ""
            try:
                findings, impression = self.writer.write(sample.entities, seed, attempt, feedback=feedback)
            except InfrastructureError:
                raise  # the shard fails and is redone on rerun: nothing is lost to an outage
            except Exception as e:  # one bad sample is data, not a crash
                log.debug("writer failed on %s", sample.sample_id, exc_info=True)
                reason = e.reason if isinstance(e, SampleError) else "writer_error"
                sample.reject(self.name, reason, f"attempt {attempt}: {type(e).__name__}: {e}")
                return
            sample.findings, sample.impression = findings, impression
            try:
                sample.extracted = self.verifier.extract(findings, impression)
                verdict = self.verifier.check(sample.entities, findings, impression, sample.extracted)
            except Exception as e:
                log.debug("extractor failed on %s", sample.sample_id, exc_info=True)
                sample.reject(self.name, "extractor_error", f"attempt {attempt}: {type(e).__name__}: {e}")
                return
            if verdict.ok:
                return
            detail = f"{verdict.reason} {verdict.detail}".strip()
            sample.history.append(f"write#{attempt + 1}: {detail}")
        sample.reject(self.name, "verify_mismatch", f"after {self.max_attempts} attempts: {detail}")


class LabelStage:
    """CheXpert-14 labels from the verified extraction of both sections
    (`syncxr.text.labels.chexpert_vector`); filler negations count as stated negatives."""

    name: ClassVar[str] = "label"
    requires: ClassVar[tuple[str, ...]] = ("extracted",)
    provides: ClassVar[tuple[str, ...]] = ("labels",)

    def __init__(self, ontology: Ontology | None = None, labeller: Labeller = chexpert_vector) -> None:
        self.ontology = ontology
        self.labeller = labeller

    def process(self, batch: list[Sample]) -> list[Sample]:
        for sample in live(batch):
            try:
                sample.labels = dict(self.labeller(sample.extracted, ontology=self.ontology))
            except Exception as e:
                sample.reject(self.name, "label_error", f"{type(e).__name__}: {e}")
        return batch
