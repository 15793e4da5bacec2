"""LLM report writer: prompt, parsing, OpenAI-compatible transport against a local stub server,
and the in-process transformers transport with a tiny random Llama + offline tokenizer."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from chat_stub import ChatStub, completion  # noqa: E402

from syncxr.errors import UserError  # noqa: E402
from syncxr.records import ABSENT, Entity  # noqa: E402
from syncxr.text.base import WRITERS, ReportWriter  # noqa: E402
from syncxr.text.llm import (  # noqa: E402
    LLMReportWriter,
    ReportParseError,
    TransportError,
    load_prompt,
    parse_report,
)
from syncxr.llm_transports import OpenAIChatTransport, VLLMTransport  # noqa: E402

ONTOLOGY_YAML = """
version: 1
concepts:
  - {name: pleural_effusion, type: DISEASE, synonyms: [pleural effusion, effusion], attributes: [laterality, severity], size_words: true}
  - {name: pneumothorax, type: DISEASE, synonyms: [pneumothorax]}
  - {name: cardiomegaly, type: ABNORMALITY, synonyms: [cardiomegaly], attributes: [severity]}
  - {name: right_lower_lobe, type: ANATOMY, synonyms: [right lower lobe]}
"""

ENTITIES = [
    Entity("pleural_effusion", "DISEASE", attributes={"laterality": "right", "severity": "mild"}),
    Entity("cardiomegaly", "ABNORMALITY", attributes={"severity": "moderate"}),
    Entity("pneumothorax", "NON-DISEASE", assertion=ABSENT),
    Entity("right_lower_lobe", "ANATOMY"),
    Entity("hilar_fullness", "ABNORMALITY"),  # not in the ontology: shown by its name
]


@pytest.fixture(scope="module")
def onto(tmp_path_factory):
    p = tmp_path_factory.mktemp("onto") / "onto.yaml"
    p.write_text(ONTOLOGY_YAML)
    return str(p)


@pytest.fixture()
def stub():
    s = ChatStub()
    yield s
    s.close()


@pytest.mark.parametrize(
    "answer",
    [
        "FINDINGS: Small right effusion.\nIMPRESSION: Effusion.",
        "**Findings:** Small right effusion.\n\n**Impression:** Effusion.",
        "## Findings\nSmall right\neffusion.\n\n## IMPRESSION\n- Effusion.\n",
        "Here is the report.\nfindings: Small right effusion.\nimpression: Effusion.\n\nNote: I used all entities.",
        "<think>list entities first</think>\nFINDINGS:\n* Small right effusion.\nIMPRESSION: **Effusion.**\n---\nExtra",
        "IMPRESSION: Effusion.\nFINDINGS: Small right effusion.",
    ],
)
def test_parse_report_tolerates_markdown_case_and_chatter(answer):
    assert parse_report(answer) == ("Small right effusion.", "Effusion.")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("Small right effusion. Impression of effusion.", "no FINDINGS / IMPRESSION header"),
        ("FINDINGS: Small right effusion.", "no IMPRESSION header"),
        ("FINDINGS: Small right effusion.\nIMPRESSION:   ", "empty IMPRESSION"),
    ],
)
def test_parse_report_errors_carry_a_reject_reason(answer, message):
    with pytest.raises(ReportParseError, match=message) as info:
        parse_report(answer)
    assert info.value.reason == "write_parse_error"


def test_messages_group_entities_by_type_with_attributes(onto):
    writer = LLMReportWriter(OpenAIChatTransport("http://127.0.0.1:9/v1", "m"), ontology_path=onto)
    system, user = writer.messages(ENTITIES)
    assert system["role"] == "system" and "radiologist" in system["content"]
    body = user["content"]
    # size words for a size_words concept (mild -> small), order follows the RaTE types
    block = body[body.index("ABNORMALITY:") : body.index("Rules:")].strip()
    assert block == (
        "ABNORMALITY:\n- cardiomegaly [moderate]\n- hilar fullness\n"
        "DISEASE:\n- pleural effusion [right, small]\n"
        "NON-DISEASE:\n- pneumothorax\n"
        "ANATOMY:\n- right lower lobe"
    )
    assert "{feedback}" not in body and "rejected" not in body


def test_openai_transport_request_and_feedback_on_rewrite(stub, onto, monkeypatch):
    monkeypatch.setenv("SYNCXR_TEST_KEY", "sekret")
    stub.replies = [(200, completion("FINDINGS: Right effusion.\nIMPRESSION: Effusion.")), (200, completion("FINDINGS: a.\nIMPRESSION: b."))]
    writer = WRITERS.build(
        "llm", transport="openai", base_url=stub.base_url, model="llama-70b", api_key_env="SYNCXR_TEST_KEY",
        temperature=0.5, max_tokens=300, ontology_path=onto,
    )
    assert isinstance(writer, ReportWriter) and writer.backend_id == "llm:openai:llama-70b"
    assert writer.write(ENTITIES, seed=7, attempt=0, feedback="ignored on a first attempt") == ("Right effusion.", "Effusion.")
    assert writer.write(ENTITIES, seed=7, attempt=1, feedback="missing pneumothorax|NON-DISEASE") == ("a.", "b.")
    (path0, headers0, req0), (_, _, req1) = stub.requests
    assert path0 == "/v1/chat/completions" and headers0["Authorization"] == "Bearer sekret"
    assert req0["model"] == "llama-70b" and req0["temperature"] == 0.5 and req0["max_tokens"] == 300
    assert [m["role"] for m in req0["messages"]] == ["system", "user"]
    assert req0["seed"] == writer.request_seed(7, 0) != req1["seed"] == writer.request_seed(7, 1)
    assert 0 <= req0["seed"] < 2**31
    assert "ignored on a first attempt" not in req0["messages"][1]["content"]
    assert "rejected: missing pneumothorax|NON-DISEASE" in req1["messages"][1]["content"]


def test_openai_transport_retries_server_errors_not_client_errors(stub):
    transport = OpenAIChatTransport(stub.base_url, "m", api_key_env=None, max_retries=2, retry_backoff_s=0.0)
    stub.replies = [(503, {"error": "busy"}), (429, {"error": "slow down"}), (200, completion("hello"))]
    assert transport.complete([{"role": "user", "content": "hi"}]) == "hello"
    assert len(stub.requests) == 3 and "Authorization" not in stub.requests[0][1]
    stub.replies = [(400, {"error": "bad model"})]
    with pytest.raises(TransportError, match="HTTP 400") as info:
        transport.complete([{"role": "user", "content": "hi"}])
    assert len(stub.requests) == 4 and info.value.reason == "llm_transport_error"
    stub.replies = [(500, {})] * 3
    with pytest.raises(TransportError, match="gave up after 3 tries"):
        transport.complete([{"role": "user", "content": "hi"}])
    stub.replies = [(200, {"choices": []})]
    with pytest.raises(TransportError, match="unexpected chat completion"):
        transport.complete([{"role": "user", "content": "hi"}])


def test_prompt_file_errors_and_unknown_transport(tmp_path):
    bad = tmp_path / "p.txt"
    bad.write_text("[system]\nbe brief\n[user]\nno placeholder here\n")
    with pytest.raises(UserError, match=r"\{entities\}"):
        load_prompt(bad)
    with pytest.raises(UserError, match="unknown LLM transport 'carrier-pigeon'"):
        WRITERS.build("llm", transport="carrier-pigeon")
    with pytest.raises(UserError, match="must start with http"):
        OpenAIChatTransport("127.0.0.1:8000", "m")


def test_vllm_transport_without_vllm_names_the_install():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install vllm"):
            VLLMTransport("some/model")
    else:
        pytest.skip("vllm is installed here")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["FINDINGS: small right pleural effusion. IMPRESSION: effusion.", "No pneumothorax. Heart size is normal."] * 10
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=200, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", chat_template=template)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
    )
    path = tmp_path_factory.mktemp("llama")
    LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_transformers_transport_runs_seeded_and_keeps_global_rng(tiny_llama, onto):
    import torch

    writer = WRITERS.build("llm", transport="transformers", model=str(tiny_llama), max_new_tokens=12, temperature=1.0, ontology_path=onto)
    assert writer.backend_id == f"llm:transformers:{tiny_llama.name}"
    msgs = writer.messages(ENTITIES[:2])
    state = torch.get_rng_state()
    a = writer.transport.complete(msgs, temperature=1.0, max_tokens=12, seed=3)
    b = writer.transport.complete(msgs, temperature=1.0, max_tokens=12, seed=3)
    assert isinstance(a, str) and a == b  # same seed, same draw
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched
    try:  # random weights: the answer is noise; a parse failure is data, not a crash
        findings, impression = writer.write(ENTITIES[:2], seed=1)
        assert findings and impression
    except ReportParseError as e:
        assert e.reason == "write_parse_error"
