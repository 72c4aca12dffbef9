"""Client-side chat templating: the checkpoint's own tokenizer and the server's /tokenize agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from swarmlab.bench.chat import LocalChatEncoder, ServerChatEncoder, chat_encoder, has_tokenizer
from swarmlab.bench.client import EndpointClient
from swarmlab.bench.errors import InputError

PROMPTS = ["Explain why the sky is blue.", "def f(x):\n    return x * 2  # ünïcode"]


@pytest.mark.slow
def test_local_and_server_templating_give_the_same_ids(
    tiny_model_dir: Path, reference_server: str
) -> None:
    client = EndpointClient(reference_server, "tiny", timeout_s=lambda: 60.0)
    local = chat_encoder(tiny_model_dir, client)
    server = chat_encoder(None, client)
    assert isinstance(local, LocalChatEncoder)
    assert isinstance(server, ServerChatEncoder)
    for prompt in PROMPTS:
        ids = local.encode(prompt)
        assert ids == server.encode(prompt)
        assert ids[0] == 2  # <bos> comes from the template, and only once
        assert ids.count(2) == 1
    client.close()


def test_a_folder_without_tokenizer_falls_back_to_the_server(tmp_path: Path) -> None:
    assert not has_tokenizer(tmp_path)
    client = EndpointClient("http://127.0.0.1:9", "m", timeout_s=lambda: 1.0)
    assert isinstance(chat_encoder(tmp_path, client), ServerChatEncoder)
    client.close()


@pytest.mark.slow
def test_a_tokenizer_without_chat_template_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tok"
    shutil.copytree(tiny_model_dir, copy)
    config = json.loads((copy / "tokenizer_config.json").read_text("utf-8"))
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config), "utf-8")
    for extra in copy.glob("chat_template.*"):
        extra.unlink()
    with pytest.raises(InputError, match="no chat template"):
        LocalChatEncoder(copy)
