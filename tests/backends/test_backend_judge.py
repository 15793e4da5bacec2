"""MLLM judge against a local OpenAI-compatible stub server: request shape, parsing, per-image errors."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from chat_stub import ChatStub, completion
from PIL import Image

from syncxr.errors import UserError
from syncxr.qc.judge import JudgeParseError, MLLMJudge, parse_judgement, png_data_url, problem_bank


@pytest.fixture()
def stub():
    s = ChatStub()
    yield s
    s.close()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"problematic": true, "reason": "rotated"}', (True, "rotated")),
        ('```json\n{"is_problematic": "no", "reason": ""}\n```', (False, "")),
        ('Sure. {"problematic": false, "reason": "fine frontal view"} Hope it helps.', (False, "fine frontal view")),
        ("**Yes** - the image is cropped at the apices.", (True, "the image is cropped at the apices.")),
        ("No.", (False, "")),
        ("<think>hmm, yes or no</think>no, looks fine", (False, "looks fine")),
    ],
)
def test_parse_judgement(answer, expected):
    assert parse_judgement(answer) == expected


def test_parse_judgement_failure_has_reason():
    with pytest.raises(JudgeParseError, match="no JSON verdict") as info:
        parse_judgement("The lungs look interesting.")
    assert info.value.reason == "judge_parse_error"


def test_png_data_url_round_trips_and_downscales():
    img = np.arange(200 * 100, dtype=np.uint32).reshape(200, 100).astype(np.uint8)
    url = png_data_url(img, max_side=50)
    assert url.startswith("data:image/png;base64,")
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert back.shape == (50, 25) and back.dtype == np.uint8
    small = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_data_url(img[:20, :10]).split(",", 1)[1]))))
    np.testing.assert_array_equal(small, img[:20, :10])  # no resize below max_side: lossless


def test_judge_images_request_shape_and_per_image_failures(stub, tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.full((40, 30), 128, np.uint8)).save(good)
    rgb = tmp_path / "b.jpg"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(rgb)
    broken = tmp_path / "c.png"
    broken.write_bytes(b"not a png")
    stub.replies = [
        (200, completion('{"problematic": true, "reason": "overexposed"}')),
        (200, completion("I cannot tell.")),
    ]
    judge = MLLMJudge(stub.base_url, "internvl", api_key_env=None, max_retries=0, max_tokens=64)
    results = judge.judge_images([good, rgb, broken])
    assert [(r.problematic, r.reason) for r in results] == [(True, "overexposed"), (None, ""), (None, "")]
    assert results[1].error.startswith("judge_parse_error") and results[2].error.startswith("unreadable_image")
    assert problem_bank(results) == [str(good)]
    assert len(stub.requests) == 2  # the unreadable file is never sent
    path, _, body = stub.requests[0]
    assert path == "/v1/chat/completions" and body["model"] == "internvl" and body["max_tokens"] == 64
    assert body["temperature"] == 0.0
    (msg,) = body["messages"]
    text_part, image_part = msg["content"]
    assert text_part["type"] == "text" and "problematic" in text_part["text"]
    png = base64.b64decode(image_part["image_url"]["url"].split(",", 1)[1])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), np.full((40, 30), 128, np.uint8))


def test_transport_failure_is_recorded_and_missing_files_refused(stub, tmp_path):
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    stub.replies = [(404, {"error": "no such model"}), (500, {"error": "engine dead"})]
    judge = MLLMJudge(stub.base_url, "m", api_key_env=None, max_retries=0)
    (result,) = judge.judge_images([good])
    assert result.problematic is None and result.error.startswith("llm_request_rejected: HTTP 404")
    (result,) = judge.judge_images([good])  # an infrastructure failure is recorded too
    assert result.problematic is None and result.error.startswith("llm_transport_error: gave up after 1 tries: HTTP 500")
    with pytest.raises(UserError, match="1 image file"):
        MLLMJudge(stub.base_url, "m").judge_images([good, tmp_path / "gone.png"])


def test_cli_judge_copies_flagged_images_and_writes_judgements(stub, tmp_path):
    """`syncxr qc judge` against the stub server: flagged images land in --out with a CSV."""
    import numpy as np
    import pandas as pd
    from PIL import Image
    from typer.testing import CliRunner

    from syncxr.cli import app

    src = tmp_path / "real"
    src.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((32, 32), 120, np.uint8)).save(src / name)
    stub.replies = [(200, completion('{"problematic": true, "reason": "rotated"}')),
                    (200, completion('{"problematic": false, "reason": "ok"}'))]
    out = tmp_path / "flagged"
    res = CliRunner().invoke(app, ["qc", "judge", "--images", str(src), "--out", str(out),
                                   "--base-url", stub.base_url, "--model", "judge-model"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png"]
    df = pd.read_csv(out / "judgements.csv")
    assert list(df["problematic"]) == [True, False] and df.loc[0, "reason"] == "rotated"
