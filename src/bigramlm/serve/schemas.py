"""The request and response bodies of the desk's API, as pydantic models.

Every model is a class at module level. The suggest request is built from
``support.settings.SuggestSettings`` (its fields, defaults, bounds and help). Request
bounds come from ``ServerLimits``: ``build_schemas(limits)`` gives an app subclasses with
its limits, so the validation and the OpenAPI schema at ``/docs`` show the same, real
bounds.
"""

from dataclasses import dataclass, fields
from typing import Annotated, Any, Callable, Literal, Optional, TypeVar, get_type_hints

import annotated_types
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, WithJsonSchema, create_model, model_validator
from pydantic.fields import FieldInfo

from bigramlm.serve.limits import ServerLimits
from bigramlm.support.settings import INTEGERS, SETTING_BOUNDS, SuggestSettings, bounds

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


# --- requests ----------------------------------------------------------------------------
# Each request model is a class at module level, with the default ``ServerLimits``; the
# routes' helpers take these types. An app with other limits gets subclasses of the same
# name whose bounded fields carry its limits (``build_schemas``), so that validation and
# the schema at ``/docs`` show that app's real bounds.

DEFAULT_LIMITS = ServerLimits()


M = TypeVar("M", bound=BaseModel)


def _narrowed(model: type[M], le: dict[str, float] | None = None, max_length: dict[str, int] | None = None) -> type[M]:
    """``model``, or a subclass of the same name whose fields named here have these upper bounds."""
    changes: dict[str, Any] = {}
    for name, bound in [*((n, annotated_types.Le(v)) for n, v in (le or {}).items()),
                        *((n, annotated_types.MaxLen(v)) for n, v in (max_length or {}).items())]:
        old = model.model_fields[name]
        if bound in old.metadata:
            continue
        new = FieldInfo.merge_field_infos(old)
        new.metadata = [m for m in old.metadata if type(m) is not type(bound)] + [bound]
        changes[name] = (old.annotation, new)
    if not changes:
        return model
    narrowed: type[M] = create_model(model.__name__, __base__=model, **changes)
    return narrowed


def _setting_fields(limits: ServerLimits) -> dict[str, Any]:
    """``SuggestSettings``' fields as pydantic fields: their types, defaults, bounds and help,
    the upper bounds capped by ``limits`` (an operator's ``max_n``, which caps ``drafts`` too, ``max_new_tokens``)."""
    hints = get_type_hints(SuggestSettings)
    caps: dict[str, float] = {"n": limits.max_n, "drafts": limits.max_n, "max_new_tokens": limits.max_new_tokens}
    out: dict[str, Any] = {}
    for f in fields(SuggestSettings):
        b = bounds(f.name)
        annotation: Any = hints[f.name]
        if b.choices is not None:
            annotation = Optional[Literal[b.choices]]
        elif f.name in INTEGERS:
            annotation = Optional[StrictInt] if f.default is None else StrictInt
        le = b.le if f.name not in caps or b.le is None else min(b.le, caps[f.name])
        out[f.name] = (annotation, Field(f.default, ge=b.ge, gt=b.gt, le=le, description=b.help))
    return out


class SuggestBody(ValidText):
    """What ``POST /api/suggest`` takes besides the settings (which ``suggest_request`` adds)."""

    model_config = STRICT
    message: str = Field(min_length=1, max_length=DEFAULT_LIMITS.max_message_chars, description="the customer's message")
    intent: Optional[str] = Field(None, min_length=1, max_length=200,
                                  description="answer for this intent instead of the one understood (the agent's pick)")

    def settings(self) -> SuggestSettings:
        """The request's ``SuggestSettings`` (its fields are theirs, ``suggest_request``)."""
        return SuggestSettings(**{name: getattr(self, name) for name in SETTING_BOUNDS})


def suggest_request(limits: ServerLimits) -> type[SuggestBody]:
    """The suggest request: ``SuggestBody`` and every field of ``SuggestSettings``, with ``limits``."""
    return _narrowed(create_model("SuggestRequest", __base__=SuggestBody, **_setting_fields(limits)),
                     max_length={"message": limits.max_message_chars})


SuggestRequest = suggest_request(DEFAULT_LIMITS)


class CaseRequest(ValidText):
    model_config = STRICT
    message: str = Field(min_length=1, max_length=DEFAULT_LIMITS.max_message_chars)
    reply: str = Field(min_length=1, max_length=DEFAULT_LIMITS.max_reply_chars)
    intent: Optional[str] = Field(None, max_length=200)
    category: Optional[str] = Field(None, max_length=200)
    suggestion_id: Optional[str] = Field(None, max_length=200, description="id of the suggestion the reply started from")
    edited: StrictBool = Field(False, description="whether the agent changed the suggestion")


class CasePageQuery(BaseModel):
    offset: int = Field(0, ge=0, le=2**62)
    limit: int = Field(50, ge=1, le=DEFAULT_LIMITS.max_page)


class FeedbackRequest(ValidText):
    model_config = STRICT
    suggestion_id: str = Field(min_length=1, max_length=200, description="id of a suggestion shown by /api/suggest")
    action: Literal["dismiss"] = Field(description="dismiss: the agent rejected the suggestion (negative feedback)")
    reason: Optional[str] = Field(None, max_length=DEFAULT_LIMITS.max_reason_chars, description="why, in the agent's words")


class OpenAIRequest(ValidText):
    """What both OpenAI routes take besides their prompt: the model, sampling, streaming."""

    # Extra fields are kept, so that the route refuses the ones it cannot honour by name.
    model_config = ConfigDict(extra="allow")
    model: Optional[str] = Field(None, description="the run's id (GET /v1/models); other ids get 404")
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: StrictInt = Field(1, ge=1, le=DEFAULT_LIMITS.max_n)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    stop: Stop = None
    seed: Optional[int] = SEED


class CompletionRequest(OpenAIRequest):
    prompt: str | list[str] = Field(max_length=DEFAULT_LIMITS.max_prompt_chars)
    max_tokens: int = Field(16, ge=1, le=DEFAULT_LIMITS.max_new_tokens)


class ChatMessage(BaseModel):
    model_config = LENIENT
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None


class ChatRequest(OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1, max_length=DEFAULT_LIMITS.max_chat_messages)
    max_tokens: Optional[int] = Field(None, ge=1, le=DEFAULT_LIMITS.max_new_tokens)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=DEFAULT_LIMITS.max_new_tokens)


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def with_models(**models: object) -> Callable[[Endpoint], Endpoint]:
    """An endpoint annotated with the module's request models takes this app's instead
    (``build_schemas``): FastAPI validates with the app's bounds and shows them at
    ``/docs``, mypy checks the endpoint against the module's types (the app's subclass them).
    Apply it below the route decorator: FastAPI reads the annotations when it registers."""

    def bind(endpoint: Endpoint) -> Endpoint:
        endpoint.__annotations__.update(models)
        return endpoint

    return bind


@dataclass(frozen=True)
class Schemas:
    """The request models of one app, with that app's bounds (subclasses of the module's)."""

    SuggestRequest: type[SuggestBody]
    CaseRequest: type[CaseRequest]
    CasePageQuery: type[CasePageQuery]
    CompletionRequest: type[CompletionRequest]
    ChatRequest: type[ChatRequest]
    FeedbackRequest: type[FeedbackRequest]


def build_schemas(limits: ServerLimits) -> Schemas:
    text, n, tokens = limits.max_message_chars, limits.max_n, limits.max_new_tokens
    return Schemas(
        suggest_request(limits),
        _narrowed(CaseRequest, max_length={"message": text, "reply": limits.max_reply_chars}),
        _narrowed(CasePageQuery, le={"limit": limits.max_page}),
        _narrowed(CompletionRequest, le={"n": n, "max_tokens": tokens}, max_length={"prompt": limits.max_prompt_chars}),
        _narrowed(ChatRequest, le={"n": n, "max_tokens": tokens, "max_completion_tokens": tokens},
                  max_length={"messages": limits.max_chat_messages}),
        _narrowed(FeedbackRequest, max_length={"reason": limits.max_reason_chars}),
    )


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
    store_texts: Literal["reading", "read"] = Field(
        "read", description="whether the store's texts, which drafts are checked against, are read yet (read behind a serving desk)")
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
