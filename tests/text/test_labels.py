"""CheXpert-14 label vector rules (text/labels.py)."""

import pytest

from syncxr.records import ABSENT, CHEXPERT14_SNAKE, PRESENT, UNCERTAIN, Entity
from syncxr.text.extract import LexiconExtractor
from syncxr.text.labels import chexpert_vector
from syncxr.vocab import load_ontology


@pytest.fixture(scope="module")
def ontology():
    return load_ontology()


@pytest.fixture(scope="module")
def x(ontology):
    return LexiconExtractor(ontology)


def E(name, typ, assertion=PRESENT):
    return Entity(name, typ, assertion)


def labels_of(x, ontology, text):
    return chexpert_vector(x.extract(text), ontology)


def test_keys_and_empty(ontology):
    v = chexpert_vector([], ontology)
    assert tuple(v) == CHEXPERT14_SNAKE
    assert all(val is None for val in v.values())  # nothing mentioned: not even No Finding


def test_values_per_assertion(ontology):
    v = chexpert_vector(
        [
            E("cardiomegaly", "ABNORMALITY"),
            E("pneumonia", "DISEASE", UNCERTAIN),
            E("pneumothorax", "NON-DISEASE", ABSENT),
        ],
        ontology,
    )
    assert (v["cardiomegaly"], v["pneumonia"], v["pneumothorax"]) == (1.0, -1.0, 0.0)
    assert v["edema"] is None
    assert v["no_finding"] is None


def test_non_type_means_absent_even_with_default_assertion(ontology):
    # another extractor may leave `assertion` at its default; the NON- type still means absent
    v = chexpert_vector([Entity("pleural_effusion", "NON-DISEASE")], ontology)
    assert v["pleural_effusion"] == 0.0


def test_positive_beats_uncertain_beats_negative(ontology):
    # nodule (uncertain) and mass (present) share Lung Lesion
    v = chexpert_vector([E("nodule", "ABNORMALITY", UNCERTAIN), E("mass", "ABNORMALITY")], ontology)
    assert v["lung_lesion"] == 1.0
    v = chexpert_vector([E("nodule", "NON-ABNORMALITY", ABSENT), E("mass", "ABNORMALITY", UNCERTAIN)], ontology)
    assert v["lung_lesion"] == -1.0
    v = chexpert_vector([E("nodule", "NON-ABNORMALITY", ABSENT), E("mass", "NON-ABNORMALITY", ABSENT)], ontology)
    assert v["lung_lesion"] == 0.0


def test_implies_present(ontology):
    v = chexpert_vector([E("hydropneumothorax", "DISEASE")], ontology)
    assert (v["pneumothorax"], v["pleural_effusion"]) == (1.0, 1.0)
    v = chexpert_vector([E("hydropneumothorax", "NON-DISEASE", ABSENT)], ontology)
    assert (v["pneumothorax"], v["pleural_effusion"]) == (0.0, None)


def test_normal_statements_negate_what_they_contradict(x, ontology):
    v = labels_of(x, ontology, "Heart size is normal. The lungs are clear.")
    assert v["cardiomegaly"] == 0.0
    assert (v["lung_opacity"], v["consolidation"], v["edema"], v["pneumonia"], v["atelectasis"]) == (0.0,) * 5
    assert v["pleural_effusion"] is None
    assert v["no_finding"] == 1.0
    # a positive mention still wins over the normal statement's 0
    v = chexpert_vector([E("clear_lungs", "NON-ABNORMALITY"), E("atelectasis", "ABNORMALITY")], ontology)
    assert v["atelectasis"] == 1.0 and v["no_finding"] is None


def test_global_normal_statement_sets_only_no_finding(x, ontology):
    v = labels_of(x, ontology, "No acute cardiopulmonary process.")
    assert v["no_finding"] == 1.0
    assert [k for k, val in v.items() if val is not None] == ["no_finding"]


def test_no_finding_rules(x, ontology):
    # support devices do not block No Finding
    v = labels_of(x, ontology, "Endotracheal tube in place. No pneumothorax.")
    assert (v["support_devices"], v["pneumothorax"], v["no_finding"]) == (1.0, 0.0, 1.0)
    # an uncertain finding blocks it
    assert labels_of(x, ontology, "Possible pneumonia.")["no_finding"] is None
    # findings without a CheXpert label do not (CheXpert: "none of the 13 pathologies")
    v = labels_of(x, ontology, "Mild scoliosis. No acute cardiopulmonary process.")
    assert v["no_finding"] == 1.0
    # anatomy alone is not a mention
    assert labels_of(x, ontology, "The right lower lobe is visualized.")["no_finding"] is None


def test_report_examples(x, ontology):
    v = labels_of(x, ontology, "Blunting of the left costophrenic angle may represent a small effusion.")
    assert v["pleural_effusion"] == -1.0
    v = labels_of(x, ontology, "Moderate cardiomegaly with mild pulmonary edema. Bibasilar atelectasis. No pneumothorax.")
    assert {k: v[k] for k in ("cardiomegaly", "edema", "atelectasis", "pneumothorax", "no_finding")} == {
        "cardiomegaly": 1.0, "edema": 1.0, "atelectasis": 1.0, "pneumothorax": 0.0, "no_finding": None
    }


def test_unknown_entities_are_ignored(ontology):
    v = chexpert_vector([Entity("right_hilar_thing", "ABNORMALITY"), E("fracture", "ABNORMALITY")], ontology)
    assert v["fracture"] == 1.0
