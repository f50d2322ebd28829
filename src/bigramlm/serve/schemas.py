"""The request and response bodies of the desk's API, as pydantic models.

Request bounds come from ``ServerLimits``, so ``build_schemas(limits)`` makes the request
models for one app: the validation and the OpenAPI schema at ``/docs`` then show the same,
real bounds. Response models do not depend on the limits and live at module level.

No ``from __future__ import annotations``: the models are built inside a function, and
pydantic must see the real classes, not strings it cannot resolve there.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, WithJsonSchema, model_validator

from bigramlm.serve.limits import ServerLimits

STRICT = ConfigDict(extra="forbid")
# OpenAI clients send fields we do not use (user, logit_bias, ...): ignore those.
LENIENT = ConfigDict(extra="ignore")
#: OpenAI's limit on stop sequences.
MAX_STOPS = 4
SEED = Field(None, ge=0, le=2**63 - 1)


def _stop_as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


#: ``stop``: one string or a list of at most four; validated as a list, so the limit on
#: the list's length never applies to the length of a single string.
Stop = Annotated[
    Optional[Annotated[list[str], Field(max_length=MAX_STOPS)]],
    BeforeValidator(_stop_as_list),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": MAX_STOPS},
                              {"type": "null"}]}),
]


def _lone_surrogate(value: Any, where: str = "body") -> str | None:
    """Where a string of a request holds a lone surrogate (text no UTF-8 can carry), if anywhere."""
    if isinstance(value, str):
        return where if any("\ud800" <= ch <= "\udfff" for ch in value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((found for key, item in items if (found := _lone_surrogate(item, f"{where}.{key}"))), None)


class ValidText(BaseModel):
    """A request whose every string is valid Unicode: a lone surrogate is a 422 naming the field."""

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data: Any) -> Any:
        found = _lone_surrogate(data)
        if found:
            raise ValueError(f"{found.removeprefix('body.')} holds a lone surrogate, which is not text")
        return data


class ContentPart(BaseModel):
    """One part of a chat message's content; only ``text`` parts are read, others are ignored."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(max_length=64)
    text: Optional[str] = None

    @model_validator(mode="after")
    def _text_part_has_text(self) -> "ContentPart":
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs a string 'text'")
        return self


class StreamOptions(BaseModel):
    model_config = LENIENT
    include_usage: bool = Field(False, description="send a last chunk with the token usage (and no choices)")


def message_text(content: "str | list[ContentPart] | None") -> str:
    """The text of a chat message: the string, or its text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text or "" for part in content if part.type == "text")


@dataclass(frozen=True)
class Schemas:
    """The request models of one app, with that app's bounds."""

    SuggestRequest: type[BaseModel]
    CaseRequest: type[BaseModel]
    CasePageQuery: type[BaseModel]
    CompletionRequest: type[BaseModel]
    ChatMessage: type[BaseModel]
    ChatRequest: type[BaseModel]
    FeedbackRequest: type[BaseModel]


def build_schemas(limits: ServerLimits) -> Schemas:
    chat_message = _chat_message()
    return Schemas(_suggest_request(limits), *_case_models(limits), _completion_request(limits), chat_message,
                   _chat_request(limits, chat_message), _feedback_request(limits))


def _suggest_request(limits: ServerLimits) -> type[BaseModel]:
    class SuggestRequest(ValidText):
        model_config = STRICT
        message: str = Field(min_length=1, max_length=limits.max_message_chars, description="the customer's message")
        n: StrictInt = Field(3, ge=1, le=limits.max_n, description="candidate replies to generate")
        max_new_tokens: Optional[int] = Field(None, ge=1, le=limits.max_new_tokens, description="length limit of each reply")
        temperature: Optional[float] = Field(None, ge=0.0, le=5.0)
        top_k: Optional[int] = Field(None, ge=1, le=1_000_000)
        top_p: Optional[float] = Field(None, gt=0.0, le=1.0)
        seed: Optional[int] = SEED
        intent: Optional[str] = Field(None, min_length=1, max_length=200,
                                      description="answer for this intent instead of the one understood (the agent's pick)")
        length: Optional[Literal["as_is", "short"]] = Field(
            None, description="as_is, or short: each reply's leading sentences and its closing line (default: the brand profile's)")

    return SuggestRequest


def _case_models(limits: ServerLimits) -> tuple[type[BaseModel], type[BaseModel]]:
    class CaseRequest(ValidText):
        model_config = STRICT
        message: str = Field(min_length=1, max_length=limits.max_message_chars)
        reply: str = Field(min_length=1, max_length=limits.max_reply_chars)
        intent: Optional[str] = Field(None, max_length=200)
        category: Optional[str] = Field(None, max_length=200)
        suggestion_id: Optional[str] = Field(None, max_length=200, description="id of the suggestion the reply started from")
        edited: StrictBool = Field(False, description="whether the agent changed the suggestion")

    class CasePageQuery(BaseModel):
        offset: int = Field(0, ge=0, le=2**62)
        limit: int = Field(50, ge=1, le=limits.max_page)

    return CaseRequest, CasePageQuery


def _feedback_request(limits: ServerLimits) -> type[BaseModel]:
    class FeedbackRequest(ValidText):
        model_config = STRICT
        suggestion_id: str = Field(min_length=1, max_length=200, description="id of a suggestion shown by /api/suggest")
        action: Literal["dismiss"] = Field(description="dismiss: the agent rejected the suggestion (negative feedback)")
        reason: Optional[str] = Field(None, max_length=limits.max_reason_chars, description="why, in the agent's words")

    return FeedbackRequest


def _openai_request(limits: ServerLimits) -> type[BaseModel]:
    """What both OpenAI routes take besides their prompt: the model, sampling, streaming."""

    class OpenAIRequest(ValidText):
        # Extra fields are kept, so that the route refuses the ones it cannot honour by name.
        model_config = ConfigDict(extra="allow")
        model: Optional[str] = Field(None, description="the run's id (GET /v1/models); other ids get 404")
        temperature: float = Field(1.0, ge=0.0, le=2.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        n: StrictInt = Field(1, ge=1, le=limits.max_n)
        stream: bool = False
        stream_options: Optional[StreamOptions] = None
        stop: Stop = None
        seed: Optional[int] = SEED

    return OpenAIRequest


def _completion_request(limits: ServerLimits) -> type[BaseModel]:
    class CompletionRequest(_openai_request(limits)):  # type: ignore[misc]
        prompt: str | list[str] = Field(max_length=limits.max_prompt_chars)
        max_tokens: int = Field(16, ge=1, le=limits.max_new_tokens)

    return CompletionRequest


def _chat_message() -> type[BaseModel]:
    class ChatMessage(BaseModel):
        model_config = LENIENT
        role: Literal["system", "user", "assistant", "tool", "developer"]
        content: str | list[ContentPart] | None = None

    return ChatMessage


def _chat_request(limits: ServerLimits, chat_message: type[BaseModel]) -> type[BaseModel]:
    class ChatRequest(_openai_request(limits)):  # type: ignore[misc]
        messages: list[chat_message] = Field(min_length=1, max_length=limits.max_chat_messages)  # type: ignore[valid-type]
        max_tokens: Optional[int] = Field(None, ge=1, le=limits.max_new_tokens)
        max_completion_tokens: Optional[int] = Field(None, ge=1, le=limits.max_new_tokens)

    return ChatRequest


# --- responses -------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "store unavailable"] = "ok"
    run: str = Field(description="the run's id, as in GET /v1/models")
    assistant: bool = Field(description="whether this run can suggest replies")
    assistant_error: Optional[str] = Field(description="why it cannot, when it cannot")
    generations_running: int
    max_concurrent: int
    reloads: int = Field(description="times the run was reloaded after its weights changed")
    reload_error: Optional[str] = Field(description="why the latest change of the weights was not loaded; None once one is")
    understanding: Optional[str] = Field(None, description="which understanding reads intents")
    understanding_degraded: Optional[str] = Field(None, description="why the understanding is a fallback, when it is")
    store: Literal["sqlite", "postgresql"] = Field("sqlite", description="where the cases are: the run's file, or the team's server")
    store_ok: bool = Field(True, description="whether the store answered just now (a 503 when it did not)")
    uptime_s: float


class ServerConfig(BaseModel):
    limits: dict[str, Any] = Field(description="every bound the server enforces")
    assistant: bool
    assistant_error: Optional[str]


class CaseSaved(BaseModel):
    id: int
    edited: bool
    edit_distance: Optional[float] = Field(description="normalised edit distance from the suggestion shown, if one was named")


class FeedbackSaved(BaseModel):
    id: int
    suggestion_id: str
    request_id: str = Field(description="the suggestion request the suggestion was shown in")
    action: Literal["dismiss"]
    reason: Optional[str]
    created_at: float
    created: bool = Field(description="False when the suggestion had been dismissed already (the first record is kept)")


class CasePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[dict[str, Any]]
    next_offset: Optional[int]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "bigramlm"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
