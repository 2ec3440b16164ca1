"""The verdict of a paper's criterion, and the paper block a section carries."""
import json

import pytest

from normlab.experiments.papers.verdict import (VERDICTS, Claim, Finding, Paper, paper_block, verdict,
                                                verdict_metrics)


@pytest.mark.parametrize("checks, expected", [
    ([True, True], "agrees"), ([True], "agrees"), ([True, False], "partly"), ([False, True, True], "partly"),
    ([False, False], "disagrees"), ([None, None], "not measured"), ([], "not measured"),
    ([True, None], "partly"),          # an uncomputable check never counts as agreeing
    ([False, None], "disagrees"),
])
def test_verdict_of_checks(checks, expected):
    assert verdict(checks) == expected


def test_verdict_accepts_a_generator_and_numpy_bools():
    import numpy as np
    assert verdict(x > 0 for x in (1, 2)) == "agrees"
    assert verdict([np.bool_(True), np.bool_(False)]) == "partly"


def test_finding_refuses_an_unknown_verdict():
    c = Claim("a", "claim", "paper", "criterion")
    with pytest.raises(ValueError, match="verdict 'agree' is not one of agrees"):
        Finding(c, "ours", "agree")


def test_paper_block_is_json_and_names_the_dataset():
    paper = Paper("Wu & He", 2018, "Group Normalization", "1803.08494", "Table 2", "ResNet-50", "a conv net")
    c = Claim("b", "GN is robust", "24.1 at 2/GPU", "|err(B) - err(32)| <= 0.01")
    block = paper_block(paper, [Finding(c, "0.2 points", "agrees")], "fashion-mnist", 12.34)
    json.dumps(block)
    assert block["cite"] == "Wu & He (2018), \u201cGroup Normalization\u201d, arXiv:1803.08494"
    assert block["url"] == "https://arxiv.org/abs/1803.08494" and block["seconds"] == 12.3
    assert "fashion-mnist" in block["dataset"] and "not the paper's" in block["dataset"]
    assert block["findings"] == [{"claim": "(b) GN is robust", "paper": "24.1 at 2/GPU", "ours": "0.2 points",
                                  "criterion": "|err(B) - err(32)| <= 0.01", "verdict": "agrees"}]
    assert block["short"] == "Wu & He 2018"
    assert verdict_metrics([Finding(c, "x", "partly")]) == {"b": "partly"} and "partly" in VERDICTS


@pytest.mark.parametrize("authors, short", [
    ("Sergey Ioffe, Christian Szegedy", "Ioffe & Szegedy 2015"), ("Yuxin Wu & Kaiming He", "Wu & He 2015"),
    ("Shibani Santurkar, Dimitris Tsipras, Andrew Ilyas, Aleksander Madry", "Santurkar et al. 2015"),
    ("Jimmy Lei Ba, Jamie Ryan Kiros, Geoffrey E. Hinton", "Ba et al. 2015"),
])
def test_short_reference(authors, short):
    assert Paper(authors, 2015, "t", "1", "w", "s", "o").short == short
