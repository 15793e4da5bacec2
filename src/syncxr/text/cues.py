"""The cue table of the assertion step (negation.py): which words negate, hedge, link or end a scope.

Each entry is (regex, kind); a space matches any whitespace run; the longest alternative wins at a
position. Sources: how radiologists write (RADIOLOGY-GUIDE), the Indiana University reports' tuning
folds, and the cue lists of two reference labelers checked phrase by phrase (the CheXpert labeler's
negation and uncertainty patterns, pyConText's lexical KB / medspaCy's ConText rules).
"""

from __future__ import annotations

import re

NEG_F, NEG_B, NEG_BI = "neg_f", "neg_b", "neg_bi"
UNC_F, UNC_B, UNC_BI = "unc_f", "unc_b", "unc_bi"
PSEUDO, TERM = "pseudo", "term"
# "to exclude X" / "to rule out X": a hedge, except as the purpose of a recommended study ("CT is
# recommended to exclude a mass", "oblique views could be obtained to identify a nodule"): that asks
# a question and reports nothing, read as a hypothetical (like "if there is concern for X").
PURPOSE = "purpose"
RECOMMENDATION = re.compile(
    r"\b(?:recommend\w*|consider\w*|advised|further (?:evaluation|imaging|characterization|assessment)|"
    r"follow[- ]?up|would be (?:helpful|useful|suited|of use)|(?:could|can|may|should) be (?:performed|obtained|considered))\b"
)
# Links from one finding to the diagnosis it would mean ("opacity to suggest pneumonia"): they carry
# a negation of what precedes them onto what follows ("no opacity to suggest pneumonia"); alone,
# LINK_UNC hedges what follows and LINK does nothing ("opacity consistent with pneumonia").
LINK, LINK_UNC = "link", "link_unc"

_BE = r"(?:is|are|was|were|has been|have been)"
_SEEN = r"(?:seen|identified|visualized|visualised|appreciated|present|evident|demonstrated|noted|detected|visible|apparent)"

# (regex, kind). A space matches any whitespace run.
TRIGGERS: list[tuple[str, str]] = [
    # pseudo-triggers: look like negation, negate nothing
    (r"no (?:significant |appreciable |substantial )?(?:interval )?(?:change|changes|increase|decrease|worsening|improvement|progression)", PSEUDO),
    (r"without (?:significant |appreciable )?(?:interval )?(?:change|changes|increase|worsening)", PSEUDO),
    (r"not (?:only|necessarily|changed|significantly changed)", PSEUDO),
    (r"no longer (?:intubated)", PSEUDO),
    (r"gram[- ]negative", PSEUDO),
    (r"(?:age[- ]indeterminate|indeterminate age)", PSEUDO),  # a definite finding of unknown age
    # links (see LINK): longer than the hedges they contain ("to suggest" before "suggest")
    # (a match starts at its verb, after a look-behind for "to": very common words such as "to"
    # and "of" are kept out of the words a trigger may start at, for speed)
    (r"(?<=to\s)(?:suggest|indicate|represent|explain)", LINK_UNC),
    (r"(?:suggestive|suspicious|suspicion|worrisome|concerning|characteristic|typical) (?:of|for)", LINK_UNC),
    (r"suggesting", LINK_UNC),
    (r"(?:consistent|compatible) with", LINK),
    (r"most (?:suggestive|characteristic|typical|compatible|consistent) (?:of|for|with)", LINK),
    (r"diagnostic of", LINK),
    # forward negation
    (r"no", NEG_F),
    (r"not", NEG_F),
    (r"nor", NEG_F),
    (r"neither", NEG_F),  # "neither effusion nor pneumothorax": "nor" alone leaves the first unnegated
    (r"without", NEG_F),
    (r"free of", NEG_F),
    (r"clear of", NEG_F),
    (r"negative for", NEG_F),
    (r"absence of", NEG_F),
    (r"lack of", NEG_F),
    (r"(?:(?:is|are|appears?|remains?) )?unremarkable for", NEG_F),
    (r"(?:fails|fail|failed) to (?:reveal|demonstrate|show)", NEG_F),
    (r"absent", NEG_F),
    (r"(?:interval )?resolution of", NEG_F),
    (r"(?:interval )?removal of", NEG_F),
    (r"(?:interval )?(?:clearing|disappearance|drainage) of", NEG_F),  # CheXpert's negations too
    (r"(?:a )?(?:history|hx) of", NEG_F),  # historical, not on this film ("history of pneumonia")
    (r"no longer", NEG_F),
    (r"rather than", NEG_F),
    (r"(?:has|have) been ruled out", NEG_B),
    (r"(?:is|are|was|were) (?:now )?(?:ruled out|excluded)", NEG_B),  # "pneumothorax is excluded"
    (r"not associated with", NEG_F),  # "with" would end the scope of "not"
    (r"low (?:probability|likelihood) (?:of|for)", NEG_F),
    (r"atypical for", NEG_F),
    # an appearance that imitates a finding is not the finding ("nipple shadow simulating a nodule")
    (r"(?:mimicking|mimics|mimic|simulating|simulates|simulate)", NEG_F),
    # hypotheticals: advice and limits of the study, not findings ("if there is concern for fracture",
    # "symptoms of infection", "fractures may not be demonstrated")
    (r"if (?:there (?:is|are) )?(?:clinical )?(?:concern|suspicion|question) (?:for|of)", NEG_F),
    # ("signs of edema" alone is a finding: only clinical signs are hypothetical)
    (r"(?:symptoms|signs and symptoms|clinical signs|clinical symptoms) of", NEG_F),
    (r"(?:could|may|might|can) (?:obscure|hide|mask)", NEG_F),
    (r"may not be (?:demonstrated|seen|visualized|visible|detected|apparent|evident)", NEG_B),
    # backward negation
    (rf"{_BE} not {_SEEN}", NEG_B),
    (rf"{_BE} no longer {_SEEN}", NEG_B),
    (rf"not (?:definitely |definitively |clearly )?{_SEEN}", NEG_B),
    (rf"no longer {_SEEN}", NEG_B),
    (rf"{_BE} (?:now )?(?:absent|gone)", NEG_B),
    (r"(?:is|are|appears?|remains?) (?:within (?:the )?(?:normal limits|limits of normal)|normal|unremarkable(?! for))", NEG_B),
    (r"(?:has|have) (?:since |now |completely |nearly |almost )?(?:resolved|cleared|disappeared)", NEG_B),
    (r"(?:has|have) (?:since |now )?been removed", NEG_B),
    (r"(?:was|were|is|are) removed", NEG_B),
    (r"removed", NEG_B),
    (r"resolved", NEG_BI),
    (r"unlikely to (?:represent|be|reflect)", NEG_F),
    (r"not likely", NEG_BI),
    (r"unlikely", NEG_BI),  # "effusion is unlikely", "unlikely to represent pneumonia": leans negative
    (r"doubtful", NEG_BI),  # "effusion is doubtful": as "unlikely"
    # forward uncertainty
    (r"possible", UNC_F),
    (r"possibly", UNC_F),
    (r"less likely", UNC_BI),  # the other reading is favoured ("edema is less likely")
    (r"may", UNC_F),
    (r"might", UNC_F),
    (r"could", UNC_F),
    (r"questionable", UNC_F),
    (r"question of", UNC_F),
    (r"question", UNC_F),  # "question mild cardiomegaly", "opacity, question pneumonia"
    (r"suspect", UNC_F),  # "I suspect early pneumonia" (the verb; "suspected" below)
    # a finding named only as what to correlate for is a possibility ("clinical correlation for
    # pneumonia is recommended", "correlate clinically for infection")
    (r"(?:clinical )?correlation for", UNC_F),
    (r"correlate (?:clinically )?for", UNC_F),
    (r"concern for", UNC_F),
    (r"suggest", UNC_F),
    (r"suggests", UNC_F),
    (r"(?:cannot|can not|can't|could not) (?:entirely |completely |definitely |totally |fully )?(?:exclude|rule out)", UNC_F),
    (r"possibility of", UNC_F),
    (r"differential (?:diagnosis )?(?:includes|would include|of)", UNC_F),
    (r"equivocal", UNC_BI),  # "equivocal left effusion", "the effusion is equivocal"
    (r"unable to (?:adequately |fully )?(?:assess|evaluate|exclude)", UNC_F),
    (r"(?:cannot|can not|could not) be (?:adequately |fully )?(?:assessed|evaluated)", UNC_B),
    (r"suspected", UNC_F),
    (r"presumed", UNC_F),
    (r"presumably", UNC_F),
    (r"indeterminate", UNC_F),
    (r"uncertain", UNC_F),
    (r"not certain", UNC_F),
    (r"(?:rule out|r/o|evaluate for|assess for)", UNC_F),
    (r"(?<=to\s)(?:exclude|identify|detect|rule out|evaluate for|assess for)", PURPOSE),
    (r"\?(?=\s*[a-z])", UNC_F),
    (r"difficult to (?:exclude|rule out)", UNC_BI),
    # backward uncertainty
    (r"(?:cannot|can not|can't|could not|may not) (?:be )?(?:entirely |completely |definitely |totally |fully )?(?:excluded|ruled out)", UNC_B),
    (rf"{_BE} not (?:entirely |completely )?(?:excluded|ruled out)", UNC_B),
    (r"not (?:excluded|ruled out)", UNC_B),
    (rf"{_BE} (?:also |more )?(?:possible|suspected|questioned|a consideration|another consideration|considered|not excluded)", UNC_B),
    (r"alternatively", UNC_F),
    (r"(?<=[a-z])\?", UNC_B),
    # terminators
    (r";", TERM),
    (r":", TERM),
    (r"but", TERM),
    (r"however", TERM),
    (r"although", TERM),
    (r"though", TERM),
    (r"except", TERM),
    (r"aside from", TERM),
    (r"apart from", TERM),
    (r"other than", TERM),
    (r"which", TERM),
    (r"whereas", TERM),
    (r"while", TERM),
    (r"with", TERM),
    (r"there (?:is|are|has been|have been|was|were)", TERM),
    (r"and(?= (?:the|there|a|an|is|are)\b)", TERM),
]
