"""BalancedSampler: caps, conflicts, sizes, determinism, flatness, attributes, exhaustion."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncxr.errors import UserError
from syncxr.records import ABSENT, PRESENT
from syncxr.text.sample import BalancedSampler, Conflicts, PoolExhausted
from syncxr.vocab import Ontology, load_ontology


def _toy() -> Ontology:
    c = [
        dict(name="cardiomegaly", type="ABNORMALITY", chexpert="Cardiomegaly", synonyms=["cardiomegaly"],
             attributes=["severity"], contradicts=["normal_heart"]),
        dict(name="normal_heart", type="NON-ABNORMALITY", synonyms=["heart size is normal"]),
        dict(name="no_acute", type="NON-ABNORMALITY", chexpert="No Finding", synonyms=["no acute process"]),
        dict(name="effusion", type="DISEASE", chexpert="Pleural Effusion", synonyms=["pleural effusion"],
             attributes=["laterality", "severity"], size_words=True),
        dict(name="consolidation", type="ABNORMALITY", chexpert="Consolidation", synonyms=["consolidation"],
             attributes=["laterality", "zone"]),
        dict(name="tube", type="ABNORMALITY", chexpert="Support Devices", synonyms=["endotracheal tube"]),
        dict(name="granuloma", type="ABNORMALITY", synonyms=["granuloma"]),
        dict(name="lung", type="ANATOMY", synonyms=["lungs"]),
        dict(name="rll", type="ANATOMY", synonyms=["right lower lobe"], anatomy_side="right", anatomy_zone="lower"),
        dict(name="left_lung", type="ANATOMY", synonyms=["left lung"], anatomy_side="left"),
    ]
    return Ontology.model_validate({"concepts": c})


TOY = _toy()


def _assert_consistent(sampler: BalancedSampler, reports) -> None:
    conflicts = Conflicts(sampler.ontology)
    for ents in reports:
        keys = [e.key for e in ents]
        assert len(set(keys)) == len(keys)
        for a, b in itertools.combinations(keys, 2):
            assert not conflicts.conflict(a, b), (a, b)


def test_conflict_rules():
    c = Conflicts(TOY)
    assert c.conflict("effusion|DISEASE", "effusion|NON-DISEASE")  # both polarities
    assert c.conflict("cardiomegaly|ABNORMALITY", "normal_heart|NON-ABNORMALITY")  # declared
    assert not c.conflict("cardiomegaly|NON-ABNORMALITY", "normal_heart|NON-ABNORMALITY")  # negated: fine
    assert c.conflict("no_acute|NON-ABNORMALITY", "effusion|DISEASE")  # "No Finding" vs a labelled finding
    assert not c.conflict("no_acute|NON-ABNORMALITY", "effusion|NON-DISEASE")
    assert not c.conflict("no_acute|NON-ABNORMALITY", "tube|ABNORMALITY")  # support devices are allowed
    assert not c.conflict("no_acute|NON-ABNORMALITY", "granuloma|ABNORMALITY")  # no CheXpert label
    assert not c.conflict("lung|ANATOMY", "rll|ANATOMY")


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    k=st.tuples(st.integers(1, 3), st.integers(0, 2)).map(lambda t: (t[0], t[0] + t[1])),
    m=st.tuples(st.integers(0, 1), st.integers(0, 1)).map(lambda t: (t[0], t[0] + t[1])),
    tau=st.integers(3, 40),
    n=st.integers(1, 60),
)
def test_properties_caps_conflicts_sizes(seed, k, m, tau, n):
    sampler = BalancedSampler(TOY, k=k, m=m, tau_max=tau, seed=seed)
    try:
        reports = sampler.sample(n)
    except PoolExhausted as e:
        assert e.made == len(e.reports) < n and "exhausted" in str(e)
        reports = e.reports
    assert max(sampler.usage.values()) <= tau
    _assert_consistent(sampler, reports)
    for ents in reports:
        n_anat = sum(e.type == "ANATOMY" for e in ents)
        assert k[0] <= len(ents) - n_anat <= k[1]
        assert m[0] <= n_anat <= m[1]
    used = {key: 0 for key in sampler.keys}
    for key in (e.key for ents in reports for e in ents):
        used[key] += 1
    assert used == sampler.usage


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_bundled_ontology_properties(seed):
    onto = load_ontology()
    sampler = BalancedSampler(onto, seed=seed)
    reports = sampler.sample(300)
    assert len(reports) == 300
    _assert_consistent(sampler, reports)
    assert max(sampler.usage.values()) <= sampler.tau_max
    for ents in reports:
        n_anat = sum(e.type == "ANATOMY" for e in ents)
        assert 2 <= len(ents) - n_anat <= 5 and 1 <= n_anat <= 2


def test_deterministic_and_sequential():
    a = BalancedSampler(TOY, seed=7)
    b = BalancedSampler(TOY, seed=7)
    first = a.sample(50)
    assert [[e.to_dict() for e in r] for r in first] == [[e.to_dict() for e in r] for r in b.sample(50)]
    # Sampling continues: a second call gives new reports, the same as a fresh 100-report run's tail.
    c = BalancedSampler(TOY, seed=7, tau_max=a.tau_max)
    both = c.sample(100)
    assert [[e.key for e in r] for r in a.sample(50)] == [[e.key for e in r] for r in both[50:]]
    other = BalancedSampler(TOY, seed=8).sample(50)
    assert [[e.key for e in r] for r in other] != [[e.key for e in r] for r in first]


def test_attributes_only_declared_and_adopted_from_anatomy():
    sampler = BalancedSampler(TOY, k=(2, 4), m=1, seed=3, p_attribute=1.0)
    adopted = 0
    for ents in sampler.sample(400):
        anat = [e.name for e in ents if e.type == "ANATOMY"]
        for e in ents:
            declared = set(TOY.concept(e.name).attributes)
            assert set(e.attributes) <= declared
            if e.assertion == ABSENT:
                assert e.attributes == {}
            elif e.type != "ANATOMY":
                assert e.assertion == PRESENT and set(e.attributes) == declared  # p_attribute=1
            if anat == ["rll"] and e.name == "consolidation" and e.assertion == PRESENT:
                assert e.attributes == {"laterality": "right", "zone": "lower"}
                adopted += 1
            if anat == ["left_lung"] and e.name in ("consolidation", "effusion") and e.assertion == PRESENT:
                assert e.attributes["laterality"] == "left"
                adopted += 1
    assert adopted > 10


def test_counts_pool_and_flatter_than_reference():
    # A long-tailed reference corpus over part of the ontology.
    counts = {
        "effusion|DISEASE": 5000, "effusion|NON-DISEASE": 9000, "cardiomegaly|ABNORMALITY": 3000,
        "normal_heart|NON-ABNORMALITY": 8000, "consolidation|ABNORMALITY": 400, "tube|ABNORMALITY": 60,
        "granuloma|ABNORMALITY": 12, "consolidation|NON-ABNORMALITY": 0, "lung|ANATOMY": 900, "rll|ANATOMY": 30,
    }
    sampler = BalancedSampler(TOY, k=(2, 3), m=1, counts=counts, seed=0)
    reports = sampler.sample(2000)
    seen = {e.key for r in reports for e in r}
    assert seen == {k for k, v in counts.items() if v > 0}  # zero counts are not in the pool
    stats = sampler.balance_stats()
    assert stats["reference_max_min_ratio"] > 500
    assert stats["usage_max_min_ratio"] < 3
    assert stats["usage_entropy"] > 0.97 > stats["reference_entropy"]


def test_unbalanced_sampling_keeps_the_reference_long_tail():
    """balance=False (the ablation): usage follows the reference counts, no cap applies."""
    counts = {
        "effusion|DISEASE": 5000, "cardiomegaly|ABNORMALITY": 3000, "consolidation|ABNORMALITY": 400,
        "tube|ABNORMALITY": 60, "granuloma|ABNORMALITY": 40, "lung|ANATOMY": 900, "rll|ANATOMY": 30,
    }
    flat = BalancedSampler(TOY, k=1, m=1, counts=counts, seed=0).sample(4000)
    tail = BalancedSampler(TOY, k=1, m=1, counts=counts, seed=0, balance=False)
    reports = tail.sample(4000)
    assert tail.tau_max is None
    used = tail.usage
    # Shares of the non-anatomy draws match the reference shares (5000/8500 = 0.59, 40/8500 = 0.005).
    assert abs(used["effusion|DISEASE"] / 4000 - 5000 / 8500) < 0.03
    assert used["granuloma|ABNORMALITY"] < 60 and used["effusion|DISEASE"] > 2200
    assert abs(used["lung|ANATOMY"] / 4000 - 900 / 930) < 0.02
    assert tail.balance_stats()["usage_max_min_ratio"] > 30
    flat_eff = sum(e.key == "effusion|DISEASE" for r in flat for e in r)
    assert flat_eff < 1200  # the balanced draw flattens the same corpus (~4000/5 each)
    assert len(reports) == 4000 and all(len(r) == 2 for r in reports)


def test_cap_removes_entities_and_exhaustion_reports_progress():
    sampler = BalancedSampler(TOY, k=2, m=1, tau_max=5, seed=1)
    with pytest.raises(PoolExhausted) as info:
        sampler.sample(1000)
    e = info.value
    assert 0 < e.made < 1000 and len(e.reports) == e.made
    assert f"after {e.made} of 1000 reports" in str(e) and "tau_max=5" in str(e)
    assert max(sampler.usage.values()) == 5
    assert sum(sampler.usage.values()) == 3 * e.made  # the failed report used nothing


def test_auto_tau_scales_with_n():
    s = BalancedSampler(TOY, k=(2, 4), m=(1, 2), seed=0)
    # 7 non-anatomy concepts -> 12 keys, 3 anatomy keys: the anatomy pool sets the cap.
    assert s.auto_tau(300) == int(1.5 * 300 * 2 / 3)
    s.sample(300)
    assert s.tau_max == 300


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k=(3, 2)), "lo <= hi"),
        (dict(k="x"), "inclusive"),
        (dict(tau_max=0), "tau_max"),
        (dict(counts={"nope|DISEASE": 3}), "unknown entity key 'nope|DISEASE'"),
        (dict(counts={"effusion|DISEASE": 3, "cardiomegaly|ABNORMALITY": 3}), "ANATOMY keys"),
    ],
)
def test_bad_input_is_user_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        BalancedSampler(TOY, **kwargs)


def test_image_backend_exclusions_hedging_and_allowed_values():
    onto = load_ontology()
    limited = [c for c in onto.concepts if c.values.get("laterality")]
    assert limited, "the ontology declares per-concept values"
    s = BalancedSampler(onto, k=(3, 5), m=(1, 2), seed=3, exclude_present=["kyphosis"], p_uncertain=0.3)
    reports = s.sample(3000)
    ents = [e for r in reports for e in r]
    assert not any(e.name == "kyphosis" and e.assertion != ABSENT for e in ents)
    devices = {c.name for c in onto.concepts if c.region == "device"}
    findings = [e for e in ents if e.type in ("ABNORMALITY", "DISEASE") and e.assertion != ABSENT and e.name not in devices]
    hedged = sum(e.assertion == "uncertain" for e in findings) / len(findings)
    assert 0.25 < hedged < 0.35
    placed = [e for e in ents if e.name in devices and e.assertion != ABSENT]
    assert placed and all(e.assertion == "present" for e in placed)  # a device is never hedged
    for e in ents:
        concept = onto.by_name[e.name]
        for kind, value in e.attributes.items():
            assert value in concept.allowed(kind), (e.name, kind, value)


def test_hedged_findings_are_at_most_mild_while_present_ones_keep_every_severity():
    s = BalancedSampler(load_ontology(), k=(3, 5), m=(1, 2), seed=5, p_uncertain=0.3, p_attribute=1.0)
    ents = [e for r in s.sample(2000) for e in r if "severity" in e.attributes]
    hedged = {e.attributes["severity"] for e in ents if e.assertion == "uncertain"}
    present = {e.attributes["severity"] for e in ents if e.assertion == "present"}
    assert hedged == {"mild"}
    assert present == {"mild", "moderate", "severe"}


def test_a_finding_conflicts_with_the_negation_of_what_it_implies():
    onto = load_ontology()
    c = Conflicts(onto)
    implied = next(x for x in onto.concepts if x.implies_present and x.type in ("ABNORMALITY", "DISEASE"))
    target = onto.by_name[implied.implies_present[0]]
    present, negated = implied.keys()[0], target.keys()[1]
    assert c.conflict(present, negated) and c.conflict(negated, present)
    assert not c.conflict(present, target.keys()[0])  # stating both present is fine
