"""LLM report writer: prompt, parsing, OpenAI-compatible transport against a local stub server,
and the in-process transformers transport with a tiny random Llama + offline tokenizer."""

from __future__ import annotations

import os
import sys
import threading
import time
import types

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from chat_stub import ChatStub, completion  # noqa: E402

from syncxr.errors import InfrastructureError, SampleError, UserError  # noqa: E402
from syncxr.text.base import WriteRequest  # noqa: E402
from syncxr.records import ABSENT, Entity  # noqa: E402
from syncxr.text.base import WRITERS, ReportWriter  # noqa: E402
from syncxr.text.llm import (  # noqa: E402
    LLMReportWriter,
    ReportParseError,
    TransportError,
    load_prompt,
    parse_report,
)
from syncxr.transports.base import LLMBadReply, LLMRequestRejected  # noqa: E402
from syncxr.transports.openai_http import OpenAIChatTransport  # noqa: E402
from syncxr.transports.vllm_engine import VLLMTransport  # noqa: E402
from syncxr.text.llm import preflight_llm  # noqa: E402

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


HI = [{"role": "user", "content": "hi"}]


def test_openai_transport_retries_server_errors_not_client_errors(stub):
    transport = OpenAIChatTransport(stub.base_url, "m", api_key_env=None, max_retries=2, retry_backoff_s=0.0)
    stub.replies = [(503, {"error": "busy"}), (429, {"error": "slow down"}), (200, completion("hello"))]
    assert transport.complete(HI) == "hello"
    assert len(stub.requests) == 3 and "Authorization" not in stub.requests[0][1]
    # a request the server refuses is that sample's content failure, not retried
    stub.replies = [(400, {"error": "prompt too long"})]
    with pytest.raises(LLMRequestRejected, match="HTTP 400") as info:
        transport.complete(HI)
    assert len(stub.requests) == 4 and info.value.reason == "llm_request_rejected"
    assert isinstance(info.value, SampleError) and not isinstance(info.value, InfrastructureError)
    # 5xx after the retries are spent: an infrastructure failure (fails the shard), reason kept
    stub.replies = [(500, {})] * 3
    with pytest.raises(TransportError, match="gave up after 3 tries: HTTP 500") as info:
        transport.complete(HI)
    assert isinstance(info.value, InfrastructureError) and info.value.reason == "llm_transport_error"
    stub.replies = [(200, {"choices": []})]
    with pytest.raises(LLMBadReply, match="unexpected chat completion") as info:
        transport.complete(HI)
    assert info.value.reason == "llm_bad_reply"


def test_truncated_answers_and_resets_are_retried(stub):
    transport = OpenAIChatTransport(stub.base_url, "m", api_key_env=None, max_retries=2, retry_backoff_s=0.0)
    stub.default = "whole answer"
    stub.cut_next = 2  # two answers stop half-way: IncompleteRead, then the third is whole
    assert transport.complete(HI) == "whole answer"
    assert len(stub.requests) == 3
    stub.cut_next = 3
    with pytest.raises(TransportError, match="gave up after 3 tries: IncompleteRead"):
        transport.complete(HI)


def test_retry_after_is_honoured_and_capped(stub, monkeypatch):
    waits = []
    monkeypatch.setattr("syncxr.transports.openai_http.time.sleep", waits.append)
    transport = OpenAIChatTransport(stub.base_url, "m", api_key_env=None, max_retries=3, retry_backoff_s=0.5, max_retry_after_s=30)
    stub.replies = [
        (429, {"error": "rate"}, {"Retry-After": "7"}),
        (503, {"error": "overloaded"}, {"Retry-After": "3600"}),  # capped at max_retry_after_s
        (502, {}),  # no header: exponential backoff (0.5 * 2**2)
        (200, completion("done")),
    ]
    assert transport.complete(HI) == "done"
    assert waits == [7.0, 30.0, 2.0]


def test_timeout_is_a_whole_request_deadline(stub):
    stub.trickle_s = 0.05  # ~200 bytes, one every 50 ms: about 10 s for the whole answer
    transport = OpenAIChatTransport(stub.base_url, "m", api_key_env=None, timeout=0.5, max_retries=1, retry_backoff_s=0.0)
    start = time.monotonic()
    with pytest.raises(TransportError, match="gave up after 2 tries: TimeoutError .*no complete answer within the 0.5 s timeout"):
        transport.complete(HI)
    assert time.monotonic() - start < 4  # two 0.5 s deadlines, not two 10 s trickles
    assert len(stub.requests) == 2


def test_auth_failure_is_infrastructure_and_preflight_says_what_to_fix(stub, monkeypatch):
    stub.api_key = "right"
    monkeypatch.setenv("SYNCXR_TEST_KEY", "wrong")
    transport = OpenAIChatTransport(stub.base_url, "m", api_key_env="SYNCXR_TEST_KEY", max_retries=3, retry_backoff_s=0.0)
    with pytest.raises(TransportError, match=r"HTTP 401.*\$SYNCXR_TEST_KEY"):
        transport.complete(HI)
    assert len(stub.requests) == 1  # not retried
    with pytest.raises(UserError, match=r"refused the credentials \(HTTP 401.*set \$SYNCXR_TEST_KEY to a valid key"):
        transport.preflight()
    monkeypatch.setenv("SYNCXR_TEST_KEY", "right")
    transport.preflight()  # key accepted, model "m" listed
    options = {"transport": "openai", "base_url": stub.base_url, "model": "llama", "api_key_env": "SYNCXR_TEST_KEY"}
    with pytest.raises(UserError, match="does not serve model 'llama'; it serves: m"):
        preflight_llm(options)
    stub.models = None  # no /models endpoint: a 1-token chat instead
    n = len(stub.requests)
    preflight_llm(options)
    assert stub.requests[-1][2]["max_tokens"] == 1 and len(stub.requests) == n + 2
    preflight_llm({"transport": "transformers", "model": "/nowhere"})  # in-process: nothing to reach
    assert WRITERS.get("llm").preflight is preflight_llm  # the hook the pipeline's preflight calls
    stub.stop()
    with pytest.raises(UserError, match="cannot reach the LLM server"):
        WRITERS.get("llm").preflight(options)


def test_writer_fingerprint_hook_names_served_or_local_weights(tiny_llama):
    hook = WRITERS.get("llm").fingerprint
    assert hook({"transport": "openai", "base_url": "http://h:8000/v1/", "model": "llama"}) == "served:http://h:8000/v1#llama"
    local = hook({"transport": "transformers", "model": str(tiny_llama)})
    assert local.startswith("sha256:") and local == hook({"transport": "vllm", "model": str(tiny_llama)})


def _echo_seed(body):
    """Answer with the request's seed; seed % 5 == 0 gets an unparsable answer, % 7 == 0 a 400."""
    seed = body["seed"]
    if seed % 7 == 0:
        return 400, {"error": "context length exceeded"}
    if seed % 5 == 0:
        return 200, completion(f"I cannot write report {seed}")
    return 200, completion(f"FINDINGS: seed {seed}.\nIMPRESSION: ok {seed}.")


def _write_requests(n=24):
    return [WriteRequest(ENTITIES[: 1 + i % 4], seed=1000 + i, attempt=i % 3, feedback="too short") for i in range(n)]


def _summary(results):
    return [r if isinstance(r, tuple) else (type(r).__name__, r.reason) for r in results]


def test_write_batch_concurrent_equals_serial_in_request_order(stub, onto):
    import threading

    # Count only this test's requests (a slow handler left over from another test must not count).
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    overlap = threading.Event()  # set once two of our requests are in the server at the same time

    def counted(wait: bool):
        def answer(body):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
                if state["now"] >= 2:
                    overlap.set()
            try:
                if wait:
                    overlap.wait(timeout=5)  # a concurrent client fills the pool at once; a serial one cannot
                return _echo_seed(body)
            finally:
                with lock:
                    state["now"] -= 1
        return answer

    requests = _write_requests()
    outs = {}
    for concurrency in (1, 8):
        state["max"] = 0
        stub.responder = counted(wait=concurrency > 1)
        writer = WRITERS.build(
            "llm", transport="openai", base_url=stub.base_url, model="m", api_key_env=None, ontology_path=onto,
            concurrency=concurrency, max_retries=0,
        )
        outs[concurrency] = _summary(writer.write_batch(requests))
        # never more than `concurrency` at once, and requests do overlap when allowed
        assert state["max"] == 1 if concurrency == 1 else 2 <= state["max"] <= concurrency, (concurrency, state)
    assert outs[1] == outs[8]
    seeds = [writer.request_seed(r.seed, r.attempt) for r in requests]
    for seed, result in zip(seeds, outs[8]):  # each answer belongs to its own request
        if seed % 7 == 0:
            assert result == ("LLMRequestRejected", "llm_request_rejected")
        elif seed % 5 == 0:
            assert result == ("ReportParseError", "write_parse_error")
        else:
            assert result == (f"seed {seed}.", f"ok {seed}.")
    assert {r for r in outs[8] if not isinstance(r[0], str) or not r[0].startswith("seed")}  # both failure kinds occur
    assert any(s % 7 == 0 for s in seeds) and any(s % 5 == 0 and s % 7 for s in seeds)


def test_server_going_down_and_coming_back(stub, onto):
    writer = WRITERS.build(
        "llm", transport="openai", base_url=stub.base_url, model="m", api_key_env=None, ontology_path=onto,
        concurrency=4, max_retries=6, retry_backoff_s=0.1,
    )
    stub.default = "FINDINGS: ok.\nIMPRESSION: ok."
    stub.stop()
    threading.Timer(0.5, stub.start).start()  # back after 0.5 s, within the 0.1+0.2+0.4+0.8 s of retries
    results = writer.write_batch(_write_requests(6))
    assert results == [("ok.", "ok.")] * 6
    # down for good: the batch raises (the shard fails and is redone on rerun), nothing is returned
    stub.stop()
    writer.transport.max_retries = 2
    with pytest.raises(TransportError, match="gave up after 3 tries: ConnectionRefusedError") as info:
        writer.write_batch(_write_requests(6))
    assert isinstance(info.value, InfrastructureError)


def test_5xx_storm_in_a_concurrent_batch_fails_the_batch(stub, onto):
    stub.responder = lambda body: (500, {"error": "engine dead"})
    writer = WRITERS.build(
        "llm", transport="openai", base_url=stub.base_url, model="m", api_key_env=None, ontology_path=onto,
        concurrency=4, max_retries=1, retry_backoff_s=0.0,
    )
    with pytest.raises(TransportError, match="HTTP 500"):
        writer.write_batch(_write_requests(8))


class _FakeVLLM:
    """Stands in for `vllm` (GPU only): records each LLM.chat call; answers echo the seed."""

    def __init__(self) -> None:
        self.calls = []
        self.fail = None
        fake = self

        class SamplingParams:
            def __init__(self, temperature, max_tokens, seed):
                self.temperature, self.max_tokens, self.seed = temperature, max_tokens, seed

        class LLM:
            def __init__(self, model, **engine_kwargs):
                fake.model, fake.engine_kwargs = model, engine_kwargs

            def chat(self, conversations, params, use_tqdm=True):
                fake.calls.append((conversations, params))
                if fake.fail:
                    raise fake.fail
                return [
                    types.SimpleNamespace(request_id=str(i), outputs=[types.SimpleNamespace(text=f"FINDINGS: s{p.seed}.\nIMPRESSION: t{p.temperature}.")])
                    for i, p in enumerate(params)
                ]

        self.module = types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams)


def test_vllm_transport_sends_all_conversations_in_one_chat_call(onto, monkeypatch):
    fake = _FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    writer = WRITERS.build(
        "llm", transport="vllm", model="/models/llama", tensor_parallel_size=2, temperature=0.3, max_tokens=64, ontology_path=onto
    )
    assert fake.model == "/models/llama" and fake.engine_kwargs == {"tensor_parallel_size": 2}
    requests = _write_requests(5)
    results = writer.write_batch(requests)
    assert len(fake.calls) == 1
    conversations, params = fake.calls[0]
    assert conversations == [writer.chat_request(r).messages for r in requests]
    seeds = [writer.request_seed(r.seed, r.attempt) for r in requests]
    assert [p.seed for p in params] == seeds and {p.max_tokens for p in params} == {64}
    assert results == [(f"s{s}.", "t0.3.") for s in seeds]
    fake.fail = RuntimeError("CUDA error: out of memory")
    with pytest.raises(TransportError, match="vLLM chat call failed for 5 conversation"):
        writer.write_batch(requests)


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


@pytest.mark.slow
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
