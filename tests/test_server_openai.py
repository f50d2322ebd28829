"""The OpenAI-compatible endpoints, driven by the official ``openai`` package over a real socket."""

from __future__ import annotations

import httpx
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
    with pytest.raises(openai.BadRequestError) as info:  # OpenAI's 400, not FastAPI's 422
        client.completions.create(model="text-run", prompt="x", max_tokens=5000)
    assert "max_tokens" in str(info.value)
    error = info.value.body
    assert error["param"] == "max_tokens" and error["type"] == "invalid_request_error"
    assert error["code"] is None or isinstance(error["code"], str)


def test_stop_may_be_a_string_of_any_length(servers):
    client = client_for(servers["text"])
    # A stop string longer than 4 characters (4 is the limit on the *list* of stops).
    # Greedy decoding of this run repeats " the the the ...".
    greedy = client.completions.create(model="text-run", prompt="the", max_tokens=12, temperature=0)
    assert greedy.choices[0].text == " the the the"
    c = client.completions.create(model="text-run", prompt="the", max_tokens=200, stop="e the", temperature=0)
    assert c.choices[0].text == " th" and c.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="text-run", prompt="the", max_tokens=5, stop=["a", "b", "c", "d", "e"])


def test_unknown_model_is_openais_404(servers):
    client = client_for(servers["text"])
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="gpt-4o", prompt="the", max_tokens=3)
    assert info.value.status_code == 404
    error = info.value.body
    assert error["type"] == "invalid_request_error" and error["param"] == "model" and error["code"] == "model_not_found"
    assert "gpt-4o" in error["message"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    # The exact body, as OpenAI sends it.
    r = httpx.post(f"{servers['text'].base}/v1/chat/completions",
                   json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and set(r.json()) == {"error"}
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    # The run's own id and no model at all are both this run.
    assert client.completions.create(model="text-run", prompt="the", max_tokens=3).model == "text-run"
    r = httpx.post(f"{servers['text'].base}/v1/completions", json={"prompt": "the", "max_tokens": 3})
    assert r.status_code == 200 and r.json()["model"] == "text-run"


@pytest.mark.parametrize("kind", ["completions", "chat"])
def test_stream_options_include_usage(servers, kind):
    client = client_for(servers["text"])
    common = {"model": "text-run", "max_tokens": 12, "n": 2, "seed": 3, "stream": True, "stream_options": {"include_usage": True}}
    if kind == "completions":
        chunks = list(client.completions.create(prompt="the cat", **common))
        whole = client.completions.create(model="text-run", prompt="the cat", max_tokens=12, n=2, seed=3)
    else:
        messages = [{"role": "user", "content": "the cat"}]
        chunks = list(client.chat.completions.create(messages=messages, **common))
        whole = client.chat.completions.create(model="text-run", messages=messages, max_tokens=12, n=2, seed=3)
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(chunk.usage is None and chunk.choices for chunk in body)
    assert last.usage.completion_tokens == 24 and last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    # Without the option: no usage chunk.
    plain = list(client.completions.create(model="text-run", prompt="the cat", max_tokens=5, stream=True))
    assert all(chunk.choices for chunk in plain)


def test_n_choices_even_when_greedy_replies_are_the_same(servers):
    chat = client_for(servers["support"], "tok-123").chat.completions.create(
        model="support-run", messages=[{"role": "user", "content": "where is my package"}],
        n=3, temperature=0, max_tokens=60,
    )
    assert [c.index for c in chat.choices] == [0, 1, 2]
    # Greedy drafts are all the same; the choices are the assistant's checked suggestions,
    # the resolved replies beside it, and the best again where there are fewer than three.
    assert all(c.message.content for c in chat.choices)
    completion = client_for(servers["text"]).completions.create(model="text-run", prompt="the", max_tokens=8, n=3, temperature=0)
    assert len(completion.choices) == 3 and len({c.text for c in completion.choices}) == 1


@pytest.mark.parametrize("text", [5, None, ["a"], {"x": 1}])
def test_content_part_text_must_be_a_string(servers, text):
    for server, headers in ((servers["support"], {"Authorization": "Bearer tok-123"}), (servers["text"], {})):
        r = httpx.post(f"{server.base}/v1/chat/completions", headers=headers,
                       json={"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], "max_tokens": 3})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"].startswith("messages.0.content")
    # Well-formed parts are read (text parts joined; others ignored).
    r = httpx.post(f"{servers['text'].base}/v1/chat/completions",
                   json={"messages": [{"role": "user", "content": [{"type": "text", "text": "the "}, {"type": "image_url", "image_url": {"url": "x"}},
                                                                   {"type": "text", "text": "cat"}]}], "max_tokens": 3})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == len("the cat\n")


def test_models_retrieve(servers):
    client = client_for(servers["text"])
    model = client.models.retrieve("text-run")
    assert model.id == "text-run" and model.object == "model"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4o")
    assert info.value.body["code"] == "model_not_found"


def test_chat_honours_stop_with_the_assistant(servers):
    client = client_for(servers["support"], "tok-123")
    messages = [{"role": "user", "content": "please cancel my purchase"}]
    whole = client.chat.completions.create(model="support-run", messages=messages, max_tokens=80, n=2, seed=4)
    text = whole.choices[0].message.content
    cut = text.split()[2]  # a word the reply holds
    stopped = client.chat.completions.create(model="support-run", messages=messages, max_tokens=80, n=2, seed=4, stop=[cut])
    for choice in stopped.choices:
        assert cut not in choice.message.content and choice.finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="support-run", messages=messages, max_tokens=80, seed=4, stop=cut, stream=True) if c.choices and c.choices[0].index == 0)
    assert cut not in streamed


@pytest.mark.parametrize("option, value", [("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
                                           ("response_format", {"type": "json_object"}), ("logprobs", True),
                                           ("tool_choice", "required"), ("frequency_penalty", 0.5), ("no_such_option", 1)])
def test_unsupported_options_are_refused_by_name(servers, option, value):
    client = client_for(servers["support"], "tok-123")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="support-run", messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                                       extra_body={option: value})
    error = info.value.body
    assert error["param"] == option and error["type"] == "invalid_request_error" and isinstance(error["code"], str)
    assert option in error["message"]
    # The values that change nothing are accepted.
    ok = client.chat.completions.create(model="support-run", messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                                        extra_body={"logprobs": False, "tools": None, "response_format": {"type": "text"},
                                                    "user": "agent-7"})
    assert ok.choices
    with pytest.raises(openai.BadRequestError) as info:
        client_for(servers["text"]).completions.create(model="text-run", prompt="the", max_tokens=3, echo=True)
    assert info.value.body["param"] == "echo"


def test_chat_reads_the_whole_conversation(servers):
    r = httpx.post(f"{servers['support'].base}/v1/chat/completions", headers={"Authorization": "Bearer tok-123"},
                   json={"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "I want to cancel order 5521"},
                                      {"role": "assistant", "content": "Which order?"}, {"role": "user", "content": "yes, that one"}],
                         "max_tokens": 120, "seed": 1, "n": 3})
    assert r.status_code == 200
    assert r.headers["x-bigramlm-messages-ignored"] == "0"
    assert r.json()["bigramlm"]["messages_ignored"] == 0 and r.json()["bigramlm"]["messages_read"] == "the conversation"
    # The order number the first turn stated fills the replies to the last one.
    contents = [c["message"]["content"] for c in r.json()["choices"]]
    assert "{{Order Number}}" not in " ".join(contents) and any("5521" in c for c in contents), contents


CHATWOOT_REPLY = {"model": "gpt-4.1-mini", "messages": [
    {"role": "system", "content": "You are a helpful support agent. Suggest a reply to the customer's latest message, "
                                  "in a friendly tone."},
    {"role": "user", "content": "Message History:\nUser: hello\nBot: An agent will be with you shortly\n"
                                "Support Agent: Hi, how can I help?\nUser: I want to cancel order 5521\n"}]}


def test_chatwoots_reply_task_is_answered_with_the_top_suggestion(servers):
    """Chatwoot's reply-suggestion prompt, with the model id its buttons hard-code."""
    r = httpx.post(f"{servers['support'].base}/v1/chat/completions", headers={"Authorization": "Bearer tok-123"},
                   json={**CHATWOOT_REPLY, "max_tokens": 120, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"].strip() and body["bigramlm"]["messages_read"] == "the conversation"


def test_chatwoots_label_task_is_answered_with_the_intent(servers):
    messages = [{"role": "system", "content": "Your role is as an assistant to a customer support agent. Pick the labels "
                                              "that fit the conversation from the list. Reply with the labels only."},
                {"role": "user", "content": "Messages:\nCustomer: please cancel my purchase\nAgent: which one?\n"
                                            "Customer: the last one\n\nLabels:\nbilling, cancel-order, shipping"}]
    r = httpx.post(f"{servers['support'].base}/v1/chat/completions", headers={"Authorization": "Bearer tok-123"},
                   json={"model": "gpt-4.1-mini", "messages": messages})
    assert r.status_code == 200, r.text
    body = r.json()
    intent = body["bigramlm"]["intent"]
    content = body["choices"][0]["message"]["content"]
    assert body["bigramlm"]["task"] == "label_suggestion" and intent
    assert content == ("cancel-order" if intent == "cancel_order" else intent)


@pytest.mark.parametrize("system, task", [("Summarize the conversation for the agent.", "summarize"),
                                          ("Fix the spelling and grammar of this message.", "rewrite"),
                                          ("Rephrase this reply in a more formal tone.", "rewrite"),
                                          ("Translate the message to German.", "translate")])
def test_tasks_the_assistant_does_not_do_are_refused_by_name(servers, system, task):
    client = client_for(servers["support"], "tok-123")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4.1-mini", max_tokens=5, messages=[
            {"role": "system", "content": system}, {"role": "user", "content": "where is my order"}])
    error = info.value.body
    assert error["type"] == "invalid_request_error" and error["code"] == "unsupported_task" and task in error["message"]


def test_langchain_chat_model_streams_stops_and_counts(servers):
    """LangChain's ChatOpenAI, as a team would point it at the desk: invoke, n, stop, stream with usage."""
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(base_url=f"{servers['support'].base}/v1", api_key="tok-123", model="support-run",
                                       max_tokens=60, seed=4, max_retries=0, stream_usage=True)
    reply = chat.invoke("please cancel my purchase")
    assert reply.content and reply.usage_metadata["total_tokens"] > 0
    assert reply.response_metadata["model_name"] == "support-run"
    cut = reply.content.split()[1]
    stopped = chat.invoke("please cancel my purchase", stop=[cut])
    assert cut not in stopped.content
    chunks = list(chat.stream("where is my package"))
    assert "".join(c.content for c in chunks) and any(c.usage_metadata for c in chunks)
    two = langchain_openai.ChatOpenAI(base_url=f"{servers['support'].base}/v1", api_key="tok-123", model="support-run",
                                      max_tokens=40, n=2, seed=4, max_retries=0)
    from langchain_core.messages import HumanMessage

    result = two.generate([[HumanMessage("where is my package")]])
    assert len(result.generations[0]) == 2 and all(g.text for g in result.generations[0])
    # Structured output needs tools or response_format: refused by name, not ignored.
    with pytest.raises(Exception) as info:
        chat.bind_tools([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]).invoke("hi")
    assert "tools" in str(info.value)


def test_chat_honours_max_tokens_with_true_usage(servers):
    """A resolved case's reply is longer than the drafts' limit: it is cut at ``max_tokens``
    with ``finish_reason: "length"``, and usage counts the tokens sent (characters, for
    this run's character tokenizer), streamed or not. Before: the whole reply, "stop"."""
    client = client_for(servers["support"], "tok-123")
    messages = [{"role": "user", "content": "please cancel my purchase"}]
    whole = client.chat.completions.create(model="support-run", messages=messages, max_tokens=200, n=2, seed=4)
    assert any(len(c.message.content) > 20 for c in whole.choices)  # what the limit below must cut
    assert whole.usage.completion_tokens == sum(len(c.message.content) for c in whole.choices)
    cut = client.chat.completions.create(model="support-run", messages=messages, max_tokens=20, n=2, seed=4)
    assert all(len(c.message.content) <= 20 for c in cut.choices)
    assert all(c.finish_reason == "length" for c in cut.choices if len(c.message.content) == 20)
    assert "length" in {c.finish_reason for c in cut.choices}
    assert cut.usage.completion_tokens == sum(len(c.message.content) for c in cut.choices)
    assert cut.usage.total_tokens == cut.usage.prompt_tokens + cut.usage.completion_tokens
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    streamed_usage = None
    for chunk in client.chat.completions.create(model="support-run", messages=messages, max_tokens=20, n=2, seed=4,
                                                stream=True, stream_options={"include_usage": True}):
        streamed_usage = chunk.usage or streamed_usage
        for ch in chunk.choices:
            texts[ch.index] = texts.get(ch.index, "") + (ch.delta.content or "")
            finishes[ch.index] = ch.finish_reason or finishes.get(ch.index, "")
    assert [texts[i] for i in range(2)] == [c.message.content for c in cut.choices]
    assert [finishes[i] for i in range(2)] == [c.finish_reason for c in cut.choices]
    assert streamed_usage is not None and streamed_usage.completion_tokens == cut.usage.completion_tokens
