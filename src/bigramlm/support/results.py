"""What the assistant answers, as typed data: used by the CLI (``assist --json``), the desk
and ``eval --task support`` alike. ``to_dict`` gives the JSON object they print or send."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bigramlm.data.cases import Case
from bigramlm.generation.speculation import DecodeStats
from bigramlm.support.settings import SuggestSettings


@dataclass
class IntentScore:
    intent: str
    category: str | None
    probability: float


@dataclass
class SimilarCase:
    """A resolved case (or training row) like the message, and its similarity (cosine, 0-1)."""

    case: Case
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.case), "label": self.case.label(), "score": self.score}


@dataclass
class BaselineIntent:
    """The TF-IDF + logistic-regression answer, shown beside the model's for comparison."""

    intent: str
    category: str | None
    probability: float
    method: str = "tfidf-logreg"


@dataclass
class Understanding:
    """What the customer wants: the likeliest intent, the ranking, and similar resolved cases."""

    intent: str | None
    category: str | None
    intent_probability: float | None
    intent_method: str | None
    #: The calibrated probability is below ``understanding.UNSURE_BELOW``: the intent is a
    #: best guess, and the desk and the CLI say so.
    intent_unsure: bool = False
    intents: list[IntentScore] = field(default_factory=list)
    similar_cases: list[SimilarCase] = field(default_factory=list)
    replaced_characters: int = 0
    baseline: BaselineIntent | None = None
    #: No intent of the run fits the message (``support.scope``): ``intent`` is None, no reply
    #: is offered as an answer, ``intents`` are the closest for the agent to pick from, and the
    #: similar cases are a loose match. Distinct from ``intent_unsure``: a known intent, unsure.
    out_of_scope: bool = False
    #: How well the message fits the run's known messages; None where the run cannot tell.
    scope_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("intent", "category", "intent_probability", "intent_method", "intent_unsure",
                                             "out_of_scope", "scope_score")}
        out["intents"] = [asdict(s) for s in self.intents]
        out["similar_cases"] = [c.to_dict() for c in self.similar_cases]
        out["replaced_characters"] = self.replaced_characters
        if self.baseline is not None:
            out["baseline"] = asdict(self.baseline)
        return out


#: Where a suggestion's text comes from, when the model wrote it (else the case's ``source``).
MODEL = "model"


@dataclass
class Suggestion:
    id: str
    #: Which of the model's drafts it is; -1 for a resolved case's reply.
    index: int
    text: str
    filled_text: str
    #: Consensus: the mean chrF (0-100) against the other candidates and the evidence replies.
    score: float
    unfilled_placeholders: list[str] = field(default_factory=list)
    mangled_placeholders: list[dict[str, Any]] = field(default_factory=list)
    #: ``model``, or the source of the case whose reply it is (``desk``, ``learn``, ``dataset``).
    source: str = MODEL
    case_id: int | None = None
    #: How the desk names where it comes from: "model draft", "resolved case #12", "training row #345".
    label: str = "model draft"
    #: The text before the team's edits (filled), what a later edit is found against.
    base_text: str = ""
    #: The team edit rules made on it: {"id", "description"}.
    team_edits: list[dict[str, str]] = field(default_factory=list)
    #: Placeholders filled with what the customer's message said: name -> value.
    from_message: dict[str, str] = field(default_factory=dict)


@dataclass
class Draft:
    """One reply the model wrote, whether it reads as text, and whether it was shown."""

    index: int
    text: str
    #: Consensus with the other drafts and the evidence (mean chrF, 0-100).
    score: float
    non_words: list[str] = field(default_factory=list)
    loops: bool = False
    shown: bool = False
    #: The word model's score of the draft (``support.fluency``), and whether it is below
    #: the floor real replies reach (such a draft is not shown).
    fluency: float | None = None
    disfluent: bool = False

    @property
    def readable(self) -> bool:
        return not self.non_words and not self.loops and not self.disfluent


@dataclass
class AssistResult:
    """The ``assist --json`` object: understanding, ranked suggestions and similar cases."""

    understanding: Understanding
    suggestions: list[Suggestion]
    model: str
    settings: SuggestSettings
    #: Every draft the model wrote for the message, readable or not, best first.
    drafts: list[Draft] = field(default_factory=list)
    #: What the decode did (shared by the messages of one ``suggest_many``): passes, drafts kept.
    decode: DecodeStats = field(default_factory=DecodeStats)

    @property
    def intent(self) -> str | None:
        return self.understanding.intent

    @property
    def category(self) -> str | None:
        return self.understanding.category

    @property
    def top_reply(self) -> str:
        return self.suggestions[0].text if self.suggestions else ""

    @property
    def model_draft(self) -> str:
        """The model's own best draft (what it would suggest alone), shown or not."""
        return self.drafts[0].text if self.drafts else ""

    def to_dict(self) -> dict[str, Any]:
        """The understanding's fields, then the suggestions, the model and the settings."""
        return {**self.understanding.to_dict(), "suggestions": [asdict(s) for s in self.suggestions],
                "drafts": [asdict(d) for d in self.drafts], "model": self.model, "settings": asdict(self.settings),
                "decode": self.decode.as_dict()}


@dataclass
class TokenEvent:
    """A piece of candidate ``index`` as it is generated."""

    index: int
    text: str
    type: str = "token"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "index": self.index, "text": self.text}


@dataclass
class UnderstandingEvent:
    understanding: Understanding
    type: str = "understanding"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.understanding.to_dict()}


@dataclass
class DoneEvent:
    result: AssistResult
    type: str = "done"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "result": self.result.to_dict()}


SuggestEvent = UnderstandingEvent | TokenEvent | DoneEvent


@dataclass
class LearnResult:
    """What one ``learn`` did (``learn --json``); the training figures are None when it had no case."""

    run_dir: str
    cases: int
    steps: int = 0
    message: str | None = None
    #: Cases of a ``--cases`` file added to the store (0 when they were stored already).
    stored_cases: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    replay: float | None = None
    block_size: int | None = None
    replaced_characters: int | None = None
    case_characters: int | None = None
    #: Mean loss per token on the cases' own text before and after, nats.
    case_loss_before: float | None = None
    case_loss_after: float | None = None
    last_batch_loss: float | None = None
    seconds: float | None = None
    #: False when the learn gate kept the old weights (``message`` says why).
    weights_kept: bool | None = None
    #: The learn gate's figures before and after (``support.gate``).
    gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class UndoResult:
    """What ``learn --undo`` restored."""

    run_dir: str
    learn_id: int
    #: Cases the undone learn had trained on, marked not learned again (they stay in the store).
    cases_unmarked: int
    weights_sha256: str
    #: The learns taken back, oldest first: one, or all of them when the undo went back to
    #: the trained files past a learn whose versions were pruned (``support.learn_chain``).
    learns_undone: list[int] = field(default_factory=list)
    #: What was done, in one line.
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
