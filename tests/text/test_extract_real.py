"""The built-in extractor on real-report phrasing (sentences written for these tests in the style of
dictated chest X-ray reports: de-identification tokens, negated lists, hedges, chronic findings)."""

import pytest

from syncxr.records import ABSENT, PRESENT, UNCERTAIN
from syncxr.text.lexicon_extractor import LexiconExtractor
from syncxr.text.merge import extract_report
from syncxr.text.labels import chexpert_vector, label_vector
from syncxr.vocab import load_ontology


@pytest.fixture(scope="module")
def x():
    return LexiconExtractor()


def read(x, text):
    """name -> assertion of the non-anatomy entities (absent wins over the others, present over
    uncertain, when a concept is read more than once)."""
    out = {}
    rank = {ABSENT: 0, UNCERTAIN: 1, PRESENT: 2}
    for e in x.extract(text):
        if e.type != "ANATOMY" and rank[e.assertion] >= rank.get(out.get(e.name), -1):
            out[e.name] = e.assertion
    return out


@pytest.mark.parametrize(
    "text, expected",
    [
        # a de-identification token inside the negation phrase or the list
        ("No XXXX of pleural effusion or pneumothorax.", {"pleural_effusion": ABSENT, "pneumothorax": ABSENT}),
        ("There is no XXXX focal airspace disease.", {"lung_opacity": ABSENT}),
        ("There is no evidence of pneumothorax, XXXX pleural effusion or focal consolidation.",
         {"pneumothorax": ABSENT, "pleural_effusion": ABSENT, "consolidation": ABSENT}),
        ("The lungs are clear without focal infiltrate, XXXX, or effusion.",
         {"clear_lungs": PRESENT, "lung_opacity": ABSENT, "pleural_effusion": ABSENT}),
        # negated lists: size words and participles inside an or-closed list stay negated
        ("No focal consolidation, large pleural effusion, or pneumothorax is identified.",
         {"consolidation": ABSENT, "pleural_effusion": ABSENT, "pneumothorax": ABSENT}),
        ("No large effusion or visualized pneumothorax.", {"pleural_effusion": ABSENT, "pneumothorax": ABSENT}),
        ("No pulmonary edema / overt heart failure identified.", {"pulmonary_edema": ABSENT, "heart_failure": ABSENT}),
        # ... but a comma list without "or" still ends at an affirmative member
        ("No pneumothorax, mild cardiomegaly.", {"pneumothorax": ABSENT, "cardiomegaly": PRESENT}),
        # links carry the negation onto the diagnosis
        ("There is no focal airspace opacity to suggest a pneumonia.", {"lung_opacity": ABSENT, "pneumonia": ABSENT}),
        ("No focal consolidation to suggest pneumonia.", {"consolidation": ABSENT, "pneumonia": ABSENT}),
        ("No findings to suggest edema.", {"pulmonary_edema": ABSENT}),
        ("Streaky right basilar opacity, suggestive of pneumonia.", {"lung_opacity": PRESENT, "pneumonia": UNCERTAIN}),
        ("Patchy opacity consistent with pneumonia.", {"lung_opacity": PRESENT, "pneumonia": PRESENT}),
        # hedges
        ("Left basilar opacity may represent atelectasis.", {"lung_opacity": PRESENT, "atelectasis": UNCERTAIN}),
        ("A small right effusion cannot be excluded.", {"pleural_effusion": UNCERTAIN}),
        ("Right basilar atelectasis, possibly scarring.", {"atelectasis": PRESENT, "fibrosis": UNCERTAIN}),
        ("Atypical infection is another consideration.", {"pneumonia": UNCERTAIN}),
        # a named finding hedged again under another name of the same concept stays present; a sign
        # hedged as the finding it suggests is uncertain
        ("Mild streaky opacities in the left base, possibly atelectasis or infiltrate.",
         {"lung_opacity": PRESENT, "atelectasis": UNCERTAIN}),
        ("Blunting of the right costophrenic angle may represent a small effusion.", {"pleural_effusion": UNCERTAIN}),
        # resolved / stable / chronic / old / healed
        ("Previously seen left pleural effusion has resolved.", {"pleural_effusion": ABSENT}),
        ("Stable mild cardiomegaly.", {"cardiomegaly": PRESENT}),
        ("Old healed right rib fractures.", {"fracture": PRESENT}),
        ("Age-indeterminate T12 compression fracture.", {"compression_fracture": PRESENT}),
        ("Chronic interstitial markings.", {"interstitial_markings": PRESENT}),
        # borderline cardiomegaly is a (mild) cardiomegaly; upper limits of normal is not
        ("Heart size is borderline enlarged.", {"cardiomegaly": PRESENT}),
        ("Borderline heart size.", {"cardiomegaly": PRESENT}),
        ("Borderline cardiomegaly without acute disease.", {"cardiomegaly": PRESENT}),
        ("Heart size is at the upper limits of normal.", {}),
        # hypotheticals, advice and limits of the study
        ("If there is concern for rib fracture, consider dedicated rib views.", {"fracture": ABSENT}),
        ("Nondisplaced fractures may not be demonstrated on this study.", {"fracture": ABSENT}),
        ("Correlate for symptoms of infection.", {"pneumonia": ABSENT}),
        ("Overlying bony structures could obscure a small nodule.", {"nodule": ABSENT}),
        # a normal-limits statement negates the finding before it
        ("Heart size and pulmonary vascular congestion appear within normal limits.", {"vascular_congestion": ABSENT}),
        # new phrasings of known findings
        ("Small medial left apical pleural air collection.", {"pneumothorax": PRESENT}),
        ("Moderate right pleural effusion with an air-fluid level.", {"hydropneumothorax": PRESENT}),
        ("Stable mild cardiomegaly and increased pulmonary vascularity.",
         {"cardiomegaly": PRESENT, "vascular_congestion": PRESENT}),
        ("There are broken left posterior ribs.", {"fracture": PRESENT}),
        ("Mild pulmonary congestion.", {"vascular_congestion": PRESENT}),
        ("No pulmonary congestion.", {"vascular_congestion": ABSENT}),
        ("Left medication injection port.", {}),  # "injection" is not a typo of "infection"
    ],
)
def test_real_phrasing(x, text, expected):
    assert read(x, text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # a calcified granuloma is its own finding, never a lung lesion
        ("Stable calcified granuloma in the right upper lobe.", {"granuloma": PRESENT}),
        ("Scattered calcified densities in the left lung.", {"granuloma": PRESENT}),
        ("Calcified right hilar granulomata.", {"granuloma": PRESENT}),
        # a nodular density explained in the same sentence is a density, not a lesion
        ("Nodular densities consistent with prior granulomatous disease.", {"lung_opacity": PRESENT, "tuberculosis": PRESENT}),
        ("Nodular density at the left base, likely a nipple shadow.", {"lung_opacity": PRESENT}),
        # ... but a lesion called a nodule stays a nodule
        ("8 mm nodule in the left lung base, possibly a granuloma.", {"nodule": PRESENT, "granuloma": UNCERTAIN}),
        ("Calcified nodules in the right upper lung.", {"nodule": PRESENT}),
        ("There is no granulomatous process or nodular opacity.", {"tuberculosis": ABSENT, "nodule": ABSENT}),
        # granulomatous and fungal infections are not pneumonia
        ("Calcified hilar nodes suggesting prior histoplasmosis infection.", {"tuberculosis": UNCERTAIN}),
        # densities projected over structures outside the lung
        ("Density projecting over the thoracic spine.", {}),
        ("Increased density overlying the lower mediastinum.", {}),
        ("Patchy opacity overlying the left 5th rib.", {"lung_opacity": PRESENT}),  # ribs locate lung findings
        ("Large masslike opacity in the right lung base.", {"mass": PRESENT}),
        # a mediastinal mass is not a lung lesion; a catheter fracture is not a bone fracture
        ("Right paratracheal mass, possibly lymphadenopathy.",
         {"enlarged_cardiomediastinum": PRESENT, "lymphadenopathy": UNCERTAIN}),
        ("Tunneled central venous catheter fracture at the level of the first rib.", {"central_line": PRESENT}),
    ],
)
def test_lesions_and_densities(x, text, expected):
    assert read(x, text) == expected


def test_report_labels(x):
    onto = load_ontology()
    ents = extract_report(
        x,
        "The heart, pulmonary XXXX and mediastinum are within normal limits. There is no pleural effusion "
        "or pneumothorax. There is no focal air space opacity to suggest a pneumonia. Calcified granuloma "
        "in the left upper lobe.",
        "No acute cardiopulmonary disease.",
    )
    v = label_vector(ents, onto, "chexpert14+")
    assert (v["pneumonia"], v["pleural_effusion"], v["pneumothorax"], v["lung_opacity"]) == (0.0,) * 4
    assert (v["lung_lesion"], v["nodule"], v["calcified_granuloma"]) == (None, None, 1.0)
    assert (v["no_finding"], v["no_finding_chexpert"]) == (0.0, 1.0)  # a granuloma is a finding, not a pathology
    ents = extract_report(x, "Borderline heart size. Bibasilar atelectasis. Large hiatal hernia.", "")
    v = label_vector(ents, onto, "chexpert14+")
    assert (v["cardiomegaly"], v["atelectasis"], v["lung_opacity"], v["hernia"]) == (1.0, 1.0, 1.0, 1.0)
    assert chexpert_vector(ents, onto)["no_finding"] == 0.0


@pytest.mark.parametrize(
    "text, expected",
    [
        # the favoured reading is named: present
        ("Probable small right pleural effusion.", {"pleural_effusion": PRESENT}),
        ("Left basilar opacity, probably atelectasis.", {"lung_opacity": PRESENT, "atelectasis": PRESENT}),
        ("Interstitial opacities most suggestive of edema.", {"lung_opacity": PRESENT, "pulmonary_edema": PRESENT}),
        ("Basilar atelectasis is likely.", {"atelectasis": PRESENT}),
        # a named differential without a hedge word: both present
        ("Bibasilar atelectasis versus scarring.", {"atelectasis": PRESENT, "fibrosis": PRESENT}),
        ("Left lower lobe atelectasis or pneumonia.", {"atelectasis": PRESENT, "pneumonia": PRESENT}),
        ("Streaky left basilar opacity, XXXX atelectasis or scarring.",
         {"lung_opacity": PRESENT, "atelectasis": PRESENT, "fibrosis": PRESENT}),
        ("Small left effusion vs. pleural thickening.", {"pleural_effusion": PRESENT, "pleural_thickening": PRESENT}),
        # ... but a hedge covers the whole differential after it
        ("Right basilar opacity could reflect atelectasis or early pneumonia.",
         {"lung_opacity": PRESENT, "atelectasis": UNCERTAIN, "pneumonia": UNCERTAIN}),
        ("Possibly atelectasis versus scarring at the left base.", {"atelectasis": UNCERTAIN, "fibrosis": UNCERTAIN}),
        ("Aspiration or edema is also possible.", {"aspiration": UNCERTAIN, "pulmonary_edema": UNCERTAIN}),
        ("Edema is less likely.", {"pulmonary_edema": UNCERTAIN}),
        ("Differential diagnosis includes infection.", {"pneumonia": UNCERTAIN}),
        # the purpose of a recommended study asks a question: nothing is reported
        ("Chest CT is recommended to exclude an underlying mass.", {"mass": ABSENT}),
        ("Consider oblique views to rule out a nodule.", {"nodule": ABSENT}),
        ("Further evaluation with CT could be performed to identify a small nodule.", {"nodule": ABSENT}),
        # ... while outside a recommendation "to exclude" is a hedge
        ("Clinical correlation is needed to exclude pneumonia.", {"pneumonia": UNCERTAIN}),
        ("Difficult to exclude a small left effusion.", {"pleural_effusion": UNCERTAIN}),
    ],
)
def test_favoured_readings_differentials_and_recommendations(x, text, expected):
    assert read(x, text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # abbreviations and list numbers do not end a sentence; decimals never split
        ("Effusion vs. atelectasis at the right base. No pneumothorax.",
         ["Effusion vs. atelectasis at the right base.", "No pneumothorax."]),
        ("1. Mild cardiomegaly. 2. No edema.", ["1. Mild cardiomegaly.", "2. No edema."]),
        ("Chronic changes, e.g. scarring at the apices. Nodule measures 1.2 cm.",
         ["Chronic changes, e.g. scarring at the apices.", "Nodule measures 1.2 cm."]),
        ("Heart size normal.No effusion.", ["Heart size normal.", "No effusion."]),
        ("No focal consolidation\nHeart size is normal", ["No focal consolidation", "Heart size is normal"]),
    ],
)
def test_one_sentence_splitter(x, text, expected):
    from syncxr.text.sentences import split_sentences

    assert [text[s:e] for s, e in split_sentences(text, x.lexicon)] == expected


def test_differential_reaches_labels(x):
    onto = load_ontology()
    ents = extract_report(x, "Heart size normal. Bibasilar opacities.", "Bibasilar atelectasis versus infiltrate.")
    v = label_vector(ents, onto)
    assert (v["atelectasis"], v["lung_opacity"]) == (1.0, 1.0)
    ents = extract_report(x, "", "Bibasilar opacities may represent atelectasis versus infiltrate.")
    assert label_vector(ents, onto)["atelectasis"] == -1.0


# Phrasings from the cue and term lists of two reference labelers (the CheXpert labeler's mention
# phrases and uncertainty patterns, medspaCy's ConText rules): sentences written for this test.
@pytest.mark.parametrize(
    "text, expected",
    [
        # "neither X nor Y": both negated ("nor" alone left X present)
        ("Neither pneumothorax nor effusion is seen.", {"pneumothorax": ABSENT, "pleural_effusion": ABSENT}),
        ("There is neither consolidation nor effusion.", {"consolidation": ABSENT, "pleural_effusion": ABSENT}),
        ("There is lack of focal consolidation.", {"consolidation": ABSENT}),
        ("The study fails to reveal a pneumothorax.", {"pneumothorax": ABSENT}),
        ("Lungs are unremarkable for consolidation.", {"consolidation": ABSENT}),
        ("The lungs are unremarkable. Small left effusion.", {"pleural_effusion": PRESENT}),
        ("A right effusion is doubtful.", {"pleural_effusion": ABSENT}),
        # hedges: "question X", "suspect X", and a finding named only as what to correlate for
        ("Question mild cardiomegaly.", {"cardiomegaly": UNCERTAIN}),
        ("Left lower lobe opacity, question pneumonia.", {"lung_opacity": PRESENT, "pneumonia": UNCERTAIN}),
        ("I suspect early pneumonia.", {"pneumonia": UNCERTAIN}),
        ("Opacity in the right base, clinical correlation for pneumonia recommended.",
         {"lung_opacity": PRESENT, "pneumonia": UNCERTAIN}),
        ("Correlate clinically for infection.", {"pneumonia": UNCERTAIN}),
        ("The nodule in question is stable.", {"nodule": PRESENT}),
        # terms: lobar collapse, air space spellings, infiltration, vascular indistinctness
        ("Stable left upper lobe collapse.", {"atelectasis": PRESENT}),
        ("There is collapse of the right lower lobe.", {"atelectasis": PRESENT}),
        ("Compression collapse of a lower thoracic vertebral body.", {}),
        ("Patchy air-space disease in the right base.", {"lung_opacity": PRESENT}),
        ("No acute air space disease.", {"lung_opacity": ABSENT}),
        ("Patchy infiltration in the left base.", {"lung_opacity": PRESENT}),
        ("Pulmonary vascular indistinctness.", {"vascular_congestion": PRESENT}),
        ("Interstitial opacities with indistinct vascular margins.",
         {"lung_opacity": PRESENT, "vascular_congestion": PRESENT}),
        ("Enlarged cardiac shadow.", {"cardiomegaly": PRESENT}),
        # pyConText's negated / ambivalent cues that radiologists use
        ("There are signs of mild pulmonary edema.", {"pulmonary_edema": PRESENT}),
        ("Pneumothorax is excluded.", {"pneumothorax": ABSENT}),
        ("Pneumothorax is not excluded.", {"pneumothorax": UNCERTAIN}),
        ("Cannot totally exclude a small pneumothorax.", {"pneumothorax": UNCERTAIN}),
        ("Overlying nipple shadow simulating a nodule.", {"nodule": ABSENT}),
        ("The left effusion is equivocal.", {"pleural_effusion": UNCERTAIN}),
        ("Pneumothorax cannot be evaluated on this supine film.", {"pneumothorax": UNCERTAIN}),
        ("Unable to exclude a small effusion.", {"pleural_effusion": UNCERTAIN}),
        ("Pneumonia not likely.", {"pneumonia": ABSENT}),
        ("Opacity not associated with volume loss.", {"lung_opacity": PRESENT, "volume_loss": ABSENT}),
        ("Pleural effusion not definitely seen.", {"pleural_effusion": ABSENT}),
        # the CheXpert labeler's negations: clearing / disappearance of, history of
        ("Interval clearing of the left basilar opacity.", {"lung_opacity": ABSENT}),
        ("Disappearance of the right effusion.", {"pleural_effusion": ABSENT}),
        ("History of pneumonia.", {"pneumonia": ABSENT}),
        # a negated normal statement heads an "or" list; other joins do not continue it
        ("No evidence of acute cardiopulmonary disease or pneumothorax.",
         {"no_acute_process": PRESENT, "pneumothorax": ABSENT}),
        ("No acute cardiopulmonary disease, mild cardiomegaly.", {"no_acute_process": PRESENT, "cardiomegaly": PRESENT}),
        ("No acute disease or effusion, but there is a left pneumothorax.",
         {"no_acute_process": PRESENT, "pleural_effusion": ABSENT, "pneumothorax": PRESENT}),
        # the CheXpert labeler's edema mentions: vascular prominence / redistribution
        ("Vascular prominence in the upper lobes.", {"vascular_congestion": PRESENT}),
        ("Prominence of the pulmonary vasculature.", {"vascular_congestion": PRESENT}),
        ("Mild pulmonary vascular redistribution.", {"vascular_congestion": PRESENT}),
        ("No pulmonary vascular prominence.", {"vascular_congestion": ABSENT}),
        ("Deep sulcus sign on the left.", {"pneumothorax": PRESENT}),
        # dictation abbreviations
        ("Increased opacity in the RLL, concerning for PNA.", {"lung_opacity": PRESENT, "pneumonia": UNCERTAIN}),
        ("Bibasilar atx.", {"atelectasis": PRESENT}),
    ],
)
def test_reference_labeler_cues(x, text, expected):
    assert read(x, text) == expected
