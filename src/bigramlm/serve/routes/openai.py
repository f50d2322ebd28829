"""OpenAI-compatible routes: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``.

Completions continue the raw prompt with the run's model. Chat on an instruction run asks
the assistant: it reads the last user message only (the customer's), and says so, in the
body's "bigramlm" object (its messages_ignored) and the X-BigramLM-Messages-Ignored header; on
any other run it continues the messages' text. ``model`` may be left out or name this
run; any other gets OpenAI's 404 ``model_not_found``. An option this server does not
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
)
from bigramlm.serve.deps import DeskDep, LimitsDep
from bigramlm.serve.desk import Desk
from bigramlm.serve.errors import ModelNotFound, Unsupported
from bigramlm.serve.limits import ServerLimits
from bigramlm.serve.schemas import ChatRequest, CompletionRequest, ModelCard, ModelList, OpenAIRequest, Schemas, message_text, with_models
from bigramlm.serve.slots import Job
from bigramlm.serve.sse import MEDIA_TYPE, STREAM_HEADERS, collect
from bigramlm.support.results import DoneEvent
from bigramlm.support.settings import SuggestSettings

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
        """Chat with the assistant (instruction runs: the last user message is the customer's) or the raw model."""
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
    check_model(desk, req.model)
    refuse_unsupported(req, CHAT_DEFAULTS)
    s = sampling(req, req.max_completion_tokens or req.max_tokens or DEFAULT_CHAT_TOKENS)
    assistant, run = desk.loaded  # one read: this request keeps this pair through a reload
    ignored = 0
    if assistant is not None:
        prompt = customer_message(req, limits)
        produce, fill = assistant_pieces(assistant, prompt, s), brand_fill(assistant)
        ignored = len(req.messages) - 1
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


def customer_message(req: ChatRequest, limits: ServerLimits) -> str:
    users = [message_text(m.content) for m in req.messages if m.role == "user"]
    if not users or not users[-1].strip():
        raise HTTPException(422, "messages: the last user message is the customer's message and must not be empty")
    if len(users[-1]) > limits.max_message_chars:
        raise HTTPException(422, f"messages: the user message is longer than max_message_chars={limits.max_message_chars}")
    return users[-1]


def assistant_pieces(assistant: "Assistant", message: str, s: V1Request) -> Callable[[Job], Iterator[tuple[int, Any]]]:
    """The assistant's answer, ``(-1, AssistResult)``: its choices are checked before they go out."""

    def produce(job: Job) -> Iterator[tuple[int, Any]]:
        settings = SuggestSettings(n=s.n, max_new_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed)
        for event in assistant.suggest_stream(message, settings, stop=s.stops, check=job.check):
            if isinstance(event, DoneEvent):
                yield -1, event.result

    return produce


def brand_fill(assistant: "Assistant") -> Callable[[str], str]:
    return lambda text: assistant.brand.fill(text).text
