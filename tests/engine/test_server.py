"""The reference server over real HTTP (served from a thread of the test process): the
endpoint contract, and a 400 for every bad request. test_server_process.py runs it as a
real process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from swarmlab.engine.reference import ReferenceBackend


@pytest.fixture(scope="module")
def client(inprocess_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inprocess_server, timeout=60.0) as http:
        yield http


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> ReferenceBackend:
    from swarmlab.engine.backend import BackendOptions

    return ReferenceBackend.from_options(BackendOptions(tiny_model_dir))


def _complete(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/completions", json={"model": "tiny", "temperature": 0, **body})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_models_lists_the_served_name(client: httpx.Client) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    assert [card["id"] for card in response.json()["data"]] == ["tiny"]


def test_token_id_prompt_returns_the_reference_greedy_ids(
    client: httpx.Client, reference: ReferenceBackend
) -> None:
    prompt = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 4  # longer than the sliding window
    body = _complete(client, prompt=prompt, max_tokens=24, ignore_eos=True, return_token_ids=True)
    choice = body["choices"][0]
    assert choice["token_ids"] == reference.generate(prompt, 24, None)
    assert choice["prompt_token_ids"] == prompt
    assert choice["finish_reason"] == "length"
    assert isinstance(choice["text"], str)
    assert body["usage"] == {
        "prompt_tokens": len(prompt),
        "completion_tokens": 24,
        "total_tokens": len(prompt) + 24,
    }
    assert body["object"] == "text_completion" and body["model"] == "tiny"


def test_add_special_tokens_controls_bos_on_text_prompts(client: httpx.Client) -> None:
    with_bos = _complete(client, prompt="Hello world", max_tokens=1, return_token_ids=True)[
        "choices"
    ][0]
    without = _complete(
        client, prompt="Hello world", max_tokens=1, return_token_ids=True, add_special_tokens=False
    )
    assert with_bos["prompt_token_ids"] == [2, *without["choices"][0]["prompt_token_ids"]]


def test_token_ids_are_left_out_unless_asked_for(client: httpx.Client) -> None:
    choice = _complete(client, prompt="Hello", max_tokens=2)["choices"][0]
    assert "token_ids" not in choice and "prompt_logprobs" not in choice


def test_prompt_logprobs_are_aligned_with_the_prompt(
    client: httpx.Client, reference: ReferenceBackend
) -> None:
    prompt = [2, 45, 322, 81, 84, 266, 273, 81, 73] * 3
    choice = _complete(client, prompt=prompt, max_tokens=1, prompt_logprobs=1)["choices"][0]
    entries = choice["prompt_logprobs"]
    expected = reference.prompt_logprobs(prompt)
    assert len(entries) == len(prompt) and entries[0] is None
    for position, entry in enumerate(entries[1:], start=1):
        actual = str(prompt[position])
        assert actual in entry and 1 <= len(entry) <= 2
        assert entry[actual]["logprob"] == pytest.approx(
            expected[position][prompt[position]], abs=1e-5
        )  # type: ignore[index]


def test_prompt_logprobs_zero_keeps_only_the_actual_token(client: httpx.Client) -> None:
    prompt = [2, 45, 322, 81]
    entries = _complete(client, prompt=prompt, max_tokens=1, prompt_logprobs=0)["choices"][0][
        "prompt_logprobs"
    ]
    assert [None if e is None else list(e) for e in entries] == [None, ["45"], ["322"], ["81"]]


def test_zero_max_tokens_generates_nothing(client: httpx.Client) -> None:
    body = _complete(client, prompt=[2, 45], max_tokens=0, return_token_ids=True)
    assert body["choices"][0]["token_ids"] == [] and body["usage"]["completion_tokens"] == 0


def test_chat_applies_the_checkpoint_chat_template(
    client: httpx.Client, tiny_model_dir: Path
) -> None:
    from swarmlab.engine.loading import load_tokenizer

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
    ]
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": messages,
            "max_tokens": 12,
            "temperature": 0,
            "ignore_eos": True,
            "return_token_ids": True,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    choice = body["choices"][0]
    tokenizer = load_tokenizer(tiny_model_dir)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert choice["prompt_token_ids"] == tokenizer(text, add_special_tokens=False).input_ids
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == tokenizer.decode(
        choice["token_ids"], skip_special_tokens=True
    )
    assert body["object"] == "chat.completion"
    assert body["usage"]["completion_tokens"] == 12


def test_chat_accepts_text_parts_and_max_completion_tokens(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    response = client.post(
        "/v1/chat/completions",
        json={"messages": messages, "max_completion_tokens": 3, "ignore_eos": True},
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 3


def test_tokenize_renders_the_chat_template_like_chat_completions(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    tokens = client.post("/tokenize", json={"model": "tiny", "messages": messages}).json()
    chat = client.post(
        "/v1/chat/completions",
        json={"messages": messages, "max_tokens": 0, "return_token_ids": True},
    ).json()
    assert tokens["tokens"] == chat["choices"][0]["prompt_token_ids"]
    assert tokens["count"] == len(tokens["tokens"]) and tokens["max_model_len"] == 8192


def test_tokenize_and_detokenize_round_trip_text(client: httpx.Client) -> None:
    body = client.post("/tokenize", json={"prompt": "Hello world"}).json()
    assert body["tokens"][0] == 2  # <bos>, as add_special_tokens defaults to true for text
    text = client.post("/detokenize", json={"tokens": body["tokens"]}).json()["prompt"]
    assert text == "<bos>Hello world"


BAD_COMPLETIONS: list[tuple[Any, str | None, str]] = [
    ({"prompt": 5}, "prompt", "invalid_value"),
    ({}, "prompt", "invalid_value"),
    ({"prompt": ""}, "prompt", "invalid_value"),
    ({"prompt": [1, "a"]}, "prompt", "invalid_value"),
    ({"prompt": ["a", "b"]}, "prompt", "invalid_value"),
    ({"prompt": [1, 2, 512]}, "prompt", "invalid_value"),
    ({"prompt": [1, -1]}, "prompt", "invalid_value"),
    ({"prompt": "hi", "max_tokens": -1}, "max_tokens", "invalid_value"),
    ({"prompt": "hi", "max_tokens": 8192}, "max_tokens", "context_length_exceeded"),
    ({"prompt": "hi", "max_tokens": "8"}, "max_tokens", "invalid_type"),
    ({"prompt": "hi", "max_tokens": True}, "max_tokens", "invalid_type"),
    ({"prompt": "hi", "model": "gpt-4"}, "model", "model_not_found"),
    ({"prompt": "hi", "temperature": 0.7}, "temperature", "unsupported"),
    ({"prompt": "hi", "temperature": "0"}, "temperature", "invalid_type"),
    ({"prompt": "hi", "n": 2}, "n", "unsupported"),
    ({"prompt": "hi", "stream": True}, "stream", "unsupported"),
    ({"prompt": "hi", "stop": ["\n"]}, "stop", "unsupported"),
    ({"prompt": "hi", "logprobs": 1}, "logprobs", "unsupported"),
    ({"prompt": "hi", "prompt_logprobs": 5}, "prompt_logprobs", "unsupported"),
    ({"prompt": "hi", "ignore_eos": "yes"}, "ignore_eos", "invalid_type"),
    ({"prompt": "hi", "add_special_tokens": 1}, "add_special_tokens", "invalid_type"),
    ({"prompt": [2] * 8193}, "prompt", "context_length_exceeded"),
]

BAD_CHATS: list[tuple[Any, str | None, str]] = [
    ({}, "messages", "invalid_value"),
    ({"messages": []}, "messages", "invalid_value"),
    ({"messages": ["hi"]}, "messages[0].role", "invalid_value"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role", "invalid_value"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content",
        "invalid_value",
    ),
    (
        {"messages": [{"role": "user", "content": "hi"}], "temperature": 1},
        "temperature",
        "unsupported",
    ),
    (
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9000},
        "max_tokens",
        "context_length_exceeded",
    ),
    (
        {"messages": [{"role": "user", "content": "hi"}], "model": "other"},
        "model",
        "model_not_found",
    ),
]


BAD_TOKENIZE: list[tuple[str, Any, str | None, str]] = [
    ("/tokenize", {}, "prompt", "invalid_value"),
    (
        "/tokenize",
        {"prompt": "hi", "add_special_tokens": "no"},
        "add_special_tokens",
        "invalid_type",
    ),
    (
        "/tokenize",
        {"messages": [{"role": "bot", "content": "x"}]},
        "messages[0].role",
        "invalid_value",
    ),
    ("/detokenize", {"tokens": "1 2"}, "tokens", "invalid_value"),
    ("/detokenize", {"tokens": [1, 512]}, "tokens", "invalid_value"),
]


def _assert_openai_400(response: httpx.Response, param: str | None, code: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert isinstance(error["message"], str) and error["message"]


@pytest.mark.parametrize(("body", "param", "code"), BAD_COMPLETIONS)
def test_bad_completion_requests_get_a_400(
    client: httpx.Client, body: Any, param: str | None, code: str
) -> None:
    _assert_openai_400(client.post("/v1/completions", json=body), param, code)


@pytest.mark.parametrize(("body", "param", "code"), BAD_CHATS)
def test_bad_chat_requests_get_a_400(
    client: httpx.Client, body: Any, param: str | None, code: str
) -> None:
    _assert_openai_400(client.post("/v1/chat/completions", json=body), param, code)


@pytest.mark.parametrize(("path", "body", "param", "code"), BAD_TOKENIZE)
def test_bad_tokenize_requests_get_a_400(
    client: httpx.Client, path: str, body: Any, param: str | None, code: str
) -> None:
    _assert_openai_400(client.post(path, json=body), param, code)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_bodies_that_are_not_a_json_object_get_a_400(
    client: httpx.Client, path: str, raw: bytes
) -> None:
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    _assert_openai_400(response, None, "invalid_json")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/nothing"), ("POST", "/v1/embeddings"), ("GET", "/")]
)
def test_unknown_routes_get_a_404_in_the_same_shape(
    client: httpx.Client, method: str, path: str
) -> None:
    response = client.request(method, path, json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_a_405_in_the_same_shape(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/v1/completions", json={"prompt": "hi"})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_server_keeps_serving_after_errors(client: httpx.Client) -> None:
    assert client.post("/v1/completions", content=b"{").status_code == 400
    assert _complete(client, prompt="Hi", max_tokens=1)["usage"]["completion_tokens"] == 1


def test_a_body_without_content_length_gets_a_400(inprocess_server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "hi"}'

    response = httpx.post(f"{inprocess_server}/v1/completions", content=chunks())
    assert response.status_code == 400
    assert "Content-Length" in response.json()["error"]["message"]
