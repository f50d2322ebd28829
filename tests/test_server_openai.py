"""The OpenAI-compatible endpoints, driven by the official ``openai`` package over a real socket."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")

from bigramlm.serve.app import create_app  # noqa: E402
from desk_helpers import ThreadServer, train_support_run, train_text_run  # noqa: E402


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    work = tmp_path_factory.mktemp("desk-openai")
    support, text = train_support_run(work), train_text_run(work)
    with ThreadServer(create_app(support, token="tok-123")) as s1, ThreadServer(create_app(text)) as s2:
        yield {"support": s1, "text": s2}


def client_for(server: ThreadServer, key: str = "unused") -> "openai.OpenAI":
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=key, max_retries=0, timeout=30)


def test_models_and_completions(servers):
    client = client_for(servers["text"])
    models = client.models.list()
    assert [m.id for m in models.data] == ["text-run"]
    c = client.completions.create(model="text-run", prompt="the cat", max_tokens=20, n=2, seed=5)
    assert c.object == "text_completion" and len(c.choices) == 2
    assert all(len(ch.text) == 20 and ch.finish_reason == "length" for ch in c.choices)
    assert c.usage.prompt_tokens == 7 and c.usage.completion_tokens == 40
    # The same seed gives the same text; a stop string cuts it (and is not included).
    again = client.completions.create(model="text-run", prompt="the cat", max_tokens=20, n=2, seed=5)
    assert [ch.text for ch in again.choices] == [ch.text for ch in c.choices]
    stopped = client.completions.create(model="text-run", prompt="the", max_tokens=200, stop=["."], seed=1)
    assert "." not in stopped.choices[0].text and stopped.choices[0].finish_reason == "stop"


def test_streaming_completions(servers):
    client = client_for(servers["text"])
    stream = client.completions.create(model="text-run", prompt="the dog", max_tokens=60, n=2, seed=9, stream=True)
    texts = {0: "", 1: ""}
    finishes = {}
    chunks = 0
    for chunk in stream:
        for ch in chunk.choices:
            texts[ch.index] += ch.text
            if ch.finish_reason:
                finishes[ch.index] = ch.finish_reason
        chunks += 1
    assert chunks > 2 and finishes == {0: "length", 1: "length"}
    whole = client.completions.create(model="text-run", prompt="the dog", max_tokens=60, n=2, seed=9)
    assert [texts[0], texts[1]] == [ch.text for ch in whole.choices]  # streamed == not streamed


def test_chat_with_the_assistant(servers):
    client = client_for(servers["support"], "tok-123")
    chat = client.chat.completions.create(
        model="support-run", messages=[{"role": "system", "content": "be kind"}, {"role": "user", "content": "please cancel my purchase"}],
        max_tokens=80, n=2, seed=4,
    )
    assert chat.object == "chat.completion" and 1 <= len(chat.choices) <= 2
    assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

    pieces: dict[int, str] = {}
    finishes = {}
    for chunk in client.chat.completions.create(model="support-run", messages=[{"role": "user", "content": "where is my package"}],
                                                max_tokens=60, seed=4, stream=True):
        for ch in chunk.choices:
            pieces[ch.index] = pieces.get(ch.index, "") + (ch.delta.content or "")
            if ch.finish_reason:
                finishes[ch.index] = ch.finish_reason
    assert pieces[0] and finishes[0] in {"stop", "length"}


def test_openai_errors(servers):
    with pytest.raises(openai.AuthenticationError):
        client_for(servers["support"], "wrong").chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    client = client_for(servers["text"])
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.completions.create(model="text-run", prompt="x", max_tokens=5000)
    assert "max_tokens" in str(info.value)
