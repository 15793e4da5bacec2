"""CheXpert-14 label vector rules (text/labels.py)."""

import pytest

from syncxr.records import ABSENT, CHEXPERT14_SNAKE, PRESENT, UNCERTAIN, Entity
from syncxr.text.lexicon_extractor import LexiconExtractor
from syncxr.text.labels import PLUS_COLUMNS, chexpert_vector, columns, label_vector
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
    assert tuple(v) == (*CHEXPERT14_SNAKE, "no_finding_chexpert") == columns()
    assert all(val is None for val in v.values())  # nothing mentioned: not even No Finding
    plus = label_vector([], ontology, "chexpert14+")
    assert tuple(plus) == (*CHEXPERT14_SNAKE, "no_finding_chexpert", *PLUS_COLUMNS)
    assert set(PLUS_COLUMNS) >= {"emphysema", "fibrosis", "nodule", "mass", "hernia", "calcified_granuloma"}
    with pytest.raises(ValueError, match="chexpert14"):
        columns("chexpert15")


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
    assert (v["no_finding"], v["no_finding_chexpert"]) == (0.0, None)


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
    assert v["atelectasis"] == 1.0 and v["no_finding"] == 0.0 and v["no_finding_chexpert"] is None


def test_global_normal_statement_sets_only_no_finding(x, ontology):
    v = labels_of(x, ontology, "No acute cardiopulmonary process.")
    assert v["no_finding"] == 1.0
    assert [k for k, val in v.items() if val is not None] == ["no_finding", "no_finding_chexpert"]


def test_no_finding_rules(x, ontology):
    # strict CheXpert: support devices do not block No Finding; clinically a device is a finding
    v = labels_of(x, ontology, "Endotracheal tube in place. No pneumothorax.")
    assert (v["support_devices"], v["pneumothorax"], v["no_finding_chexpert"], v["no_finding"]) == (1.0, 0.0, 1.0, 0.0)
    # an uncertain finding blocks both
    v = labels_of(x, ontology, "Possible pneumonia.")
    assert (v["no_finding"], v["no_finding_chexpert"]) == (0.0, None)
    # findings without a CheXpert label block only the clinical value ("none of the 13 pathologies")
    v = labels_of(x, ontology, "Mild scoliosis. No acute cardiopulmonary process.")
    assert (v["no_finding"], v["no_finding_chexpert"]) == (0.0, 1.0)
    v = labels_of(x, ontology, "Small pneumoperitoneum. The lungs are clear.")
    assert (v["no_finding"], v["no_finding_chexpert"]) == (0.0, 1.0)
    # negated findings and normal statements leave both at 1
    v = labels_of(x, ontology, "No pneumoperitoneum. Heart size is normal. No pleural effusion.")
    assert (v["no_finding"], v["no_finding_chexpert"]) == (1.0, 1.0)
    # anatomy alone is not a mention
    v = labels_of(x, ontology, "The right lower lobe is visualized.")
    assert (v["no_finding"], v["no_finding_chexpert"]) == (None, None)


@pytest.mark.parametrize("assertion", [PRESENT, UNCERTAIN])
def test_every_finding_alone_blocks_clinical_no_finding(ontology, assertion):
    """Over the whole ontology: any ABNORMALITY / DISEASE concept asserted alone -> no_finding 0;
    the same concept negated -> no_finding 1."""
    findings = [c for c in ontology.concepts if c.type in ("ABNORMALITY", "DISEASE")]
    assert len(findings) > 60
    for c in findings:
        v = chexpert_vector([Entity(c.name, c.type, assertion)], ontology)
        assert v["no_finding"] == 0.0, c.name
        if c.negatable:
            v = chexpert_vector([Entity(c.name, "NON-" + c.type, ABSENT)], ontology)
            assert v["no_finding"] == 1.0, c.name
    for c in ontology.concepts:
        if c.type == "NON-ABNORMALITY":  # normal statements alone are a normal report
            assert chexpert_vector([Entity(c.name, c.type)], ontology)["no_finding"] == 1.0, c.name


def test_strict_no_finding_follows_the_13_pathologies(ontology):
    for c in ontology.concepts:
        if c.type not in ("ABNORMALITY", "DISEASE"):
            continue
        v = chexpert_vector([Entity(c.name, c.type)], ontology)
        pathology = c.chexpert not in (None, "Support Devices", "No Finding")
        assert v["no_finding_chexpert"] == (None if pathology else 1.0), c.name


def test_report_examples(x, ontology):
    v = labels_of(x, ontology, "Blunting of the left costophrenic angle may represent a small effusion.")
    assert v["pleural_effusion"] == -1.0
    v = labels_of(x, ontology, "Moderate cardiomegaly with mild pulmonary edema. Bibasilar atelectasis. No pneumothorax.")
    assert {k: v[k] for k in ("cardiomegaly", "edema", "atelectasis", "pneumothorax", "no_finding")} == {
        "cardiomegaly": 1.0, "edema": 1.0, "atelectasis": 1.0, "pneumothorax": 0.0, "no_finding": 0.0
    }


def test_unknown_entities_are_ignored(ontology):
    v = chexpert_vector([Entity("right_hilar_thing", "ABNORMALITY"), E("fracture", "ABNORMALITY")], ontology)
    assert v["fracture"] == 1.0


def test_opacity_children_imply_lung_opacity(ontology):
    # CheXpert's hierarchy: atelectasis, consolidation, pneumonia and pulmonary edema are opacities
    for name in ("atelectasis", "consolidation", "pneumonia", "pulmonary_edema"):
        c = ontology.concept(name)
        assert chexpert_vector([E(name, c.type)], ontology)["lung_opacity"] == 1.0, name
        assert chexpert_vector([E(name, c.type, UNCERTAIN)], ontology)["lung_opacity"] == -1.0, name
    # vascular congestion is Edema for CheXpert but not an opacity
    v = chexpert_vector([E("vascular_congestion", "ABNORMALITY")], ontology)
    assert (v["edema"], v["lung_opacity"]) == (1.0, None)


def test_chexpert14_plus_columns(x, ontology):
    def plus(text):
        return label_vector(x.extract(text), ontology, "chexpert14+")

    v = plus("Calcified granuloma in the right upper lobe. No pulmonary nodule.")
    assert (v["calcified_granuloma"], v["nodule"], v["lung_lesion"], v["no_finding"]) == (1.0, 0.0, 0.0, 0.0)
    v = plus("Right upper lobe mass. Small hiatal hernia. Bullous emphysema.")
    assert (v["mass"], v["nodule"], v["lung_lesion"], v["hernia"], v["emphysema"]) == (1.0, None, 1.0, 1.0, 1.0)
    v = plus("Possible pulmonary nodule. Basilar fibrosis. Lungs are otherwise clear.")
    assert (v["nodule"], v["mass"], v["fibrosis"], v["lung_lesion"]) == (-1.0, None, 1.0, -1.0)
    v = plus("No emphysema.")
    assert v["emphysema"] == 0.0
