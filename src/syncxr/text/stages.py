"""Text stages: write + verify (with rewrites) and CheXpert labelling.

Sampling is global (the balanced sampler's caps span all reports), so the runner samples before
sharding with `syncxr.text.sample.BalancedSampler` and these stages start from `sample.entities`.
"""

from __future__ import annotations

import logging
from typing import Callable, ClassVar, Optional

from syncxr.errors import InfrastructureError, SampleError, UserError
from syncxr.stage import live
from syncxr.records import Entity, Sample, derive_seed
from syncxr.text.base import ReportWriter, WriteRequest
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

    `enforce=False` is the "without report verification" ablation: the first report written is
    kept whatever the verifier says; its verdict still goes into `history` ("unverified: ...")
    and the extraction still feeds the labels.
    """

    name: ClassVar[str] = "write"
    requires: ClassVar[tuple[str, ...]] = ("entities",)
    provides: ClassVar[tuple[str, ...]] = ("findings", "impression", "extracted", "write_attempts")

    def __init__(self, writer: ReportWriter, verifier: Verifier, max_attempts: int = 3, enforce: bool = True) -> None:
        if max_attempts < 1:
            raise UserError(f"write stage: max_attempts must be >= 1, got {max_attempts}")
        if verifier.mode == "exact" and writer.adds_filler:
            raise UserError(
                "write stage: verifier mode 'exact' requires every entity of the report to be a sampled "
                "one, but the writer adds filler statements (filler=True); build the writer with "
                "filler=False or use verifier mode 'impression'"
            )
        self.writer, self.verifier, self.max_attempts = writer, verifier, max_attempts
        self.enforce = enforce

    def process(self, batch: list[Sample]) -> list[Sample]:
        """Rounds: write every pending sample in one batched call, verify them in one batched
        extraction, and send only the failures round again (with the verifier's complaint)."""
        pending = live(batch)
        feedback: dict[str, str] = {}
        for sample in pending:
            sample.backends[self.name] = self.writer.backend_id
        for attempt in range(self.max_attempts):
            if not pending:
                break
            written = self._write_round(pending, attempt, feedback)
            pending = self._verify_round(written, attempt, feedback)
        for sample in pending:
            sample.reject(self.name, "verify_mismatch", f"after {self.max_attempts} attempts: {feedback[sample.sample_id]}")
        return batch

    def _write_round(self, pending: list[Sample], attempt: int, feedback: dict[str, str]) -> list[Sample]:
        """Write attempt `attempt` of every pending sample; returns those that were written."""
        use_feedback = self.writer.uses_feedback and attempt > 0
        requests = [
            WriteRequest(
                s.entities,
                derive_seed(s.seed, s.sample_id, "write"),
                attempt,
                feedback.get(s.sample_id, "") if use_feedback else "",
            )
            for s in pending
        ]
        results = self.writer.write_batch(requests)  # an InfrastructureError fails the shard
        written = []
        for sample, result in zip(pending, results):
            sample.write_attempts = attempt + 1
            if isinstance(result, Exception):
                log.debug("writer failed on %s: %r", sample.sample_id, result)
                reason = result.reason if isinstance(result, SampleError) else "writer_error"
                sample.reject(self.name, reason, f"attempt {attempt}: {type(result).__name__}: {result}")
                continue
            sample.findings, sample.impression = result
            written.append(sample)
        return written

    def _verify_round(self, written: list[Sample], attempt: int, feedback: dict[str, str]) -> list[Sample]:
        """Verify the samples written this round; returns those to write again."""
        extracted = self._extract_all(written)
        failed = []
        for sample, entities in zip(written, extracted):
            try:
                if isinstance(entities, Exception):
                    raise entities
                sample.extracted = entities
                verdict = self.verifier.check(sample.entities, sample.findings, sample.impression, entities)
            except InfrastructureError:
                raise
            except Exception as e:
                log.debug("extractor failed on %s", sample.sample_id, exc_info=True)
                sample.reject(self.name, "extractor_error", f"attempt {attempt}: {type(e).__name__}: {e}")
                continue
            if verdict.ok:
                continue
            detail = f"{verdict.reason} {verdict.detail}".strip()
            if not self.enforce:
                sample.history.append(f"unverified: {detail}")  # kept anyway (the ablation)
                continue
            feedback[sample.sample_id] = detail
            sample.history.append(f"write#{attempt + 1}: {detail}")
            failed.append(sample)
        return failed

    def _extract_all(self, written: list[Sample]) -> list[list[Entity] | Exception]:
        """The verifier's reading of each report, in one batch; if the batch fails, sample by
        sample, so one unreadable report is that sample's reject, not the batch's."""
        reports = [(s.findings, s.impression) for s in written]
        try:
            return list(self.verifier.extract_batch(reports))
        except InfrastructureError:
            raise
        except Exception:
            out: list[list[Entity] | Exception] = []
            for findings, impression in reports:
                try:
                    out.append(self.verifier.extract(findings, impression))
                except InfrastructureError:
                    raise
                except Exception as e:
                    out.append(e)
            return out


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
