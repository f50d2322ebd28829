"""OpenAI-compatible routes: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``.

Completions continue the raw prompt with the run's model. Chat on an instruction run asks
the assistant about the whole conversation (``serve.chat_thread``: plain user/assistant
messages, or a helpdesk's transcript prompt such as Chatwoot's "Message History:"): a reply
task is answered with the suggestions for the latest customer turn, read with its thread
(``support.thread``), a label task with the intent, any other task is refused naming it.
On any other run it continues the messages' text. ``model`` may be left out or name this
run; any other gets OpenAI's 404 ``model_not_found``, except on the assistant's chat, which
takes any id (Chatwoot's buttons hard-code ``gpt-4.1-mini``). An option this server does not
support (``tools``, ``response_format`` other than text, ``logprobs``, ...) is refused with
OpenAI's 400 naming it, rather than ignored (``refuse_unsupported``).
"""

# No ``from __future__ import annotations``: the endpoints are annotated with the module's
# request models and take this app's (``schemas.with_models``), and FastAPI must see those
# classes, not names it cannot resolve.

from typing import TYPE_CHECKING, Any, Callable, Iterator

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from bigramlm.serve.completions import (
    ChatReplies,
    Envelope,
    V1Request,
    chat_body,
    chat_stream,
    completion_body,
    completion_stream,
    raw_candidates,
    usage,
)
from bigramlm.serve.chat_thread import LABEL, REPLY, ChatTask, chat_task, label_answer
from bigramlm.serve.deps import DeskDep, LimitsDep
from bigramlm.serve.desk import Desk
from bigramlm.serve.errors import ModelNotFound, Unsupported
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.schemas import ChatRequest, CompletionRequest, ModelCard, ModelList, OpenAIRequest, Schemas, message_text, with_models
from bigramlm.serve.slots import Job
from bigramlm.serve.sse import MEDIA_TYPE, STREAM_HEADERS, collect
from bigramlm.data.conversation import Conversation
from bigramlm.support.results import DoneEvent, Understanding
from bigramlm.support.settings import SuggestSettings
from bigramlm.support.thread import ThreadRequest, fill_from_thread, read_thread

if TYPE_CHECKING:  # loaded with the run: the assistant pulls in torch and scikit-learn
    from bigramlm.support.assistant import Assistant

DEFAULT_CHAT_TOKENS = 256


def router(schemas: Schemas) -> APIRouter:
    api = APIRouter(tags=["openai"])

    @api.get("/v1/models")
    def models(desk: DeskDep) -> ModelList:
        return ModelList(data=[model_card(desk)])

    @api.get("/v1/models/{model_id}")
    def model(model_id: str, desk: DeskDep) -> ModelCard:
        """The run, as OpenAI's models.retrieve answers it; any other id is OpenAI's 404 ``model_not_found``."""
        check_model(desk, model_id)
        return model_card(desk)

    @api.post("/v1/completions")
    @with_models(req=schemas.CompletionRequest)
    async def completions(req: CompletionRequest, desk: DeskDep, limits: LimitsDep) -> Any:
        """Continue a prompt with the run's model, as OpenAI's legacy completions endpoint."""
        return await complete(req, desk, limits)

    @api.post("/v1/chat/completions")
    @with_models(req=schemas.ChatRequest)
    async def chat_completions(req: ChatRequest, desk: DeskDep, limits: LimitsDep) -> Any:
        """Chat with the assistant (instruction runs: the conversation, for its latest customer turn) or the raw model."""
        return await chat(req, desk, limits)

    return api


def model_card(desk: Desk) -> ModelCard:
    return ModelCard(id=desk.model_id, created=int(desk.started))


def check_model(desk: Desk, model: str | None) -> None:
    if model is not None and model != desk.model_id:
        raise ModelNotFound(model)


def sampling(req: OpenAIRequest, max_tokens: int) -> V1Request:
    return V1Request(n=req.n, max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, seed=req.seed,
                    stops=[s for s in req.stop or [] if s])


#: OpenAI options that change nothing at these values (and are refused at any other, as
#: this server cannot honour them); an option OpenAI does not know is refused as OpenAI does.
COMMON_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "logprobs": (None, False), "top_logprobs": (None, 0), "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0), "user": (), "metadata": (), "store": (None, False),
    "service_tier": (None, "auto", "default"),
}
CHAT_DEFAULTS = {**COMMON_DEFAULTS, "tools": (None, []), "tool_choice": (None, "none", "auto"), "functions": (None, []),
                 "function_call": (None, "none", "auto"), "parallel_tool_calls": (), "response_format": (None, {"type": "text"}),
                 "modalities": (None, ["text"]), "reasoning_effort": (None,), "prediction": (None,), "audio": (None,),
                 "web_search_options": (None,)}
COMPLETION_DEFAULTS = {**COMMON_DEFAULTS, "echo": (None, False), "suffix": (None, ""), "best_of": (None, 1)}


def refuse_unsupported(req: OpenAIRequest, known: dict[str, tuple[Any, ...]]) -> None:
    """OpenAI's 400 for an option this server would otherwise drop silently: ``tools``,
    ``response_format: json_object``, ``logprobs: true``... (an empty tuple: any value is harmless)."""
    for name, value in (req.model_extra or {}).items():
        if name not in known:
            raise Unsupported(name, f"Unrecognized request argument supplied: {name}", "unrecognized_argument")
        allowed = known[name]
        if allowed and value not in allowed:
            raise Unsupported(name, f"{name} is not supported by this server (bigramlm); leave it out or use one of "
                                    f"{', '.join(repr(a) for a in allowed)}", "unsupported_parameter")


def include_usage(req: OpenAIRequest) -> bool:
    return bool(req.stream and req.stream_options is not None and req.stream_options.include_usage)


def streaming(body: Any) -> StreamingResponse:
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=STREAM_HEADERS)


async def complete(req: CompletionRequest, desk: Desk, limits: ServerLimits) -> Any:
    check_model(desk, req.model)
    refuse_unsupported(req, COMPLETION_DEFAULTS)
    prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
    if not prompts or len(prompts) * req.n > limits.max_n:
        raise HTTPException(422, f"prompt: give 1 to {limits.max_n // req.n} prompts for n={req.n} (max_n={limits.max_n})")
    if sum(len(p) for p in prompts) > limits.max_prompt_chars:
        raise HTTPException(422, f"prompt: at most {limits.max_prompt_chars} characters in all (max_prompt_chars)")
    s, run = sampling(req, req.max_tokens), desk.run
    env = Envelope("cmpl", "text_completion", desk.model_id, include_usage(req))

    def produce(job: Job) -> Iterator[tuple[int, str]]:
        for p, prompt in enumerate(prompts):
            for index, piece in raw_candidates(run, prompt, s, job):
                yield p * s.n + index, piece

    total = len(prompts) * s.n
    if not req.stream:
        texts = await desk.slots.run(lambda job: collect(produce(job), total))
        return completion_body(env, texts, run, prompts, s.max_tokens)
    items = desk.slots.stream(produce)
    return streaming(completion_stream(items, env, total, run, prompts, s.max_tokens, limits.timeout_s))


async def chat(req: ChatRequest, desk: Desk, limits: ServerLimits) -> Any:
    assistant, run = desk.loaded  # one read: this request keeps this pair through a reload
    if assistant is None:  # the raw model answers for its own id only; the assistant for any (helpdesks hard-code one)
        check_model(desk, req.model)
    refuse_unsupported(req, CHAT_DEFAULTS)
    s = sampling(req, req.max_completion_tokens or req.max_tokens or DEFAULT_CHAT_TOKENS)
    ignored = 0
    if assistant is not None:
        task = customer_thread(req, limits)
        if task.task == LABEL:
            return await label_reply(req, desk, assistant, task)
        prompt = task.conversation.turns[-1].text
        produce, fill = thread_pieces(assistant, task.conversation, s), brand_fill(assistant)
        ignored = task.ignored
    else:
        prompt = "\n".join(message_text(m.content) for m in req.messages) + "\n"
        if len(prompt) > limits.max_prompt_chars:
            raise HTTPException(422, f"messages: at most {limits.max_prompt_chars} characters in all (max_prompt_chars)")
        produce, fill = (lambda job: raw_candidates(run, prompt, s, job)), None
    env = Envelope("chatcmpl", "chat.completion.chunk", desk.model_id, include_usage(req))
    replies = ChatReplies(s.n, fill, s.stops, ignored)
    headers = {"X-BigramLM-Messages-Ignored": str(ignored)} if assistant is not None else {}
    if not req.stream:
        await desk.slots.run(lambda job: replies.consume(produce(job)))
        return JSONResponse(chat_body(env, replies, run, prompt, s.max_tokens), headers=headers)
    items = desk.slots.stream(produce)
    response = streaming(chat_stream(items, env, replies, run, prompt, s.max_tokens, limits.timeout_s))
    response.headers.update(headers)
    return response


def customer_thread(req: ChatRequest, limits: ServerLimits) -> ChatTask:
    """The request as a conversation and a task (``serve.chat_thread``); a task the assistant
    does not do is refused naming it, and the latest customer turn must say something."""
    task = chat_task(req.messages)
    if task.task not in (REPLY, LABEL):
        raise Unsupported("messages", f"the {task.task} task is not supported by this server (bigramlm): it suggests "
                                      "replies (reply_suggestion) and labels (label_suggestion)", "unsupported_task")
    latest = task.conversation.latest_customer()
    if latest is None or not task.conversation.turns[latest].text.strip():
        raise HTTPException(422, "messages: the conversation needs a customer's (user) message to answer")
    if len(task.conversation.turns[latest].text) > limits.max_message_chars:
        raise HTTPException(422, f"messages: the user message is longer than max_message_chars={limits.max_message_chars}")
    return task


async def label_reply(req: ChatRequest, desk: Desk, assistant: "Assistant", task: ChatTask) -> Any:
    """The label task answered with the intent of the latest customer turn, read with its thread."""
    if req.stream:
        raise Unsupported("stream", "the label_suggestion task is answered whole: leave stream out", "unsupported_parameter")
    def read(job: Job) -> tuple[ThreadRequest, Understanding]:
        request = read_thread(task.conversation, lambda text: assistant.understand(text, 0))
        return request, assistant.understand(request.message, 0)

    request, understanding = await desk.slots.run(read)
    content = label_answer(understanding.intent, task.labels)
    env = Envelope("chatcmpl", "chat.completion", desk.model_id)
    choices = [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None, "finish_reason": "stop"}]
    body = env.body(choices, usage=usage(desk.run, [request.message], [content]))
    body["bigramlm"] = {"task": LABEL, "intent": understanding.intent, "intent_probability": understanding.intent_probability,
                        "messages_read": "the conversation", "with_context": request.with_context}
    return JSONResponse(body)


def thread_pieces(assistant: "Assistant", conv: Conversation, s: V1Request) -> Callable[[Job], Iterator[tuple[int, Any]]]:
    """The assistant's answer for the conversation's latest customer turn, ``(-1, AssistResult)``,
    read with its thread (``support.thread``): its choices are checked before they go out."""

    def produce(job: Job) -> Iterator[tuple[int, Any]]:
        request = read_thread(conv, lambda text: assistant.understand(text, 0))
        settings = SuggestSettings(n=s.n, max_new_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed)
        for event in assistant.suggest_stream(request.message, settings, stop=s.stops, check=job.check):
            if isinstance(event, DoneEvent):
                yield -1, fill_from_thread(event.result, request.values, assistant.brand.fill)

    return produce


def brand_fill(assistant: "Assistant") -> Callable[[str], str]:
    return lambda text: assistant.brand.fill(text).text
