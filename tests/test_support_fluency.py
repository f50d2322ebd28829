"""The fluency check: a draft whose words are all real but run as no real reply's do is
not shown; the floor comes from real replies held out of the word model."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from bigramlm.data.cases import DATASET, Case
from bigramlm.errors import BigramLMError
from bigramlm.support.choice import check_drafts, choose
from bigramlm.support.fluency import FLOOR_PERCENTILE, HOLD_OUT, Fluency, WordTrigrams, fluency_figures, tokens
from bigramlm.support.readability import RunText

OPENERS = ["I understand you want to {task}.", "I'm here to help you {task}.", "Thank you for reaching out about how to {task}.",
           "I apologize for the trouble, and I can help you {task}.", "Sure, I can assist you with how to {task}."]
TASKS = ["cancel order {{Order Number}}", "track your order {{Order Number}}", "change your shipping address",
         "get a refund for your purchase", "update your payment method", "reset your password"]
STEPS = ["Please visit {{Website URL}} and sign in to your account.",
         "Go to the {{Online Order Interaction}} section and choose the option you need.",
         "Our team is available during {{Customer Support Hours}} if you need more help.",
         "You will find the details in the confirmation email we sent you."]
CLOSERS = ["Let me know if there is anything else I can do for you.", "We will do our best to assist you.",
           "Thank you for your patience.", "I'm glad you're here, and I'm here to assist you with anything else you need."]


def _replies() -> list[str]:
    """480 replies an agent might send, in a shuffled order."""
    out = [f"{o.format(task=t)} {s} {c}" for o, t, s, c in itertools.product(OPENERS, TASKS, STEPS, CLOSERS)]
    random.Random(0).shuffle(out)
    return out


#: The draft the issue saw shown: every word real, the sentence broken.
BROKEN = ("I apologize for my best! I'm here to help you're here to assist you with finding the order number "
          "{{Order Number}}...")


def test_a_broken_draft_of_real_words_is_not_shown_while_a_real_reply_is():
    replies = _replies()
    real = replies.pop()  # a real reply the model has not seen
    evidence = [Case("cancel it", r, "cancel_order", None, DATASET, i) for i, r in enumerate(replies[:5])]
    cases = [Case("cancel my order", r, "cancel_order", None, DATASET, i) for i, r in enumerate(replies)]
    reading = RunText.of(cases + [Case("find the order number", "finding the order number", None, None, DATASET, 0)])
    broken = reading.check(BROKEN)
    assert not broken.non_words and not broken.loops  # the old gate let it through
    assert broken.disfluent and not broken.ok and "no real reply" in (broken.reason() or "")
    assert reading.check(real).ok and not reading.check(real).disfluent
    drafts = check_drafts([BROKEN, real], evidence, reading, "cancel my order")
    assert {d.text: d.disfluent for d in drafts} == {BROKEN: True, real: False}
    shown = choose(drafts, evidence, 3)
    assert BROKEN not in [c.text for c in shown]
    assert not next(d for d in drafts if d.text == BROKEN).shown
    figures = fluency_figures(reading.fluency, drafts)  # type: ignore[arg-type]
    assert figures.shown_below_floor == 0.0 and figures.rejected_only_for_fluency == 1 and figures.draft_disfluent_rate == 0.5


def test_the_floor_is_a_low_percentile_of_real_replies_held_out_of_the_model():
    replies = _replies()
    fluency = Fluency.of(replies)
    held = replies[::HOLD_OUT]
    rest = WordTrigrams()
    rest.add(r for i, r in enumerate(replies) if i % HOLD_OUT)
    scores = [rest.score(r) for r in held]
    assert fluency.held_out == len(held) == 48
    assert fluency.floor == pytest.approx(float(np.percentile(scores, FLOOR_PERCENTILE)))
    # Nearly every real reply is above it; the broken draft is below it.
    assert sum(s < fluency.floor for s in scores) <= 1
    assert fluency.below_floor(BROKEN) and not fluency.below_floor(replies[0])
    with pytest.raises(BigramLMError):
        Fluency.of(["", "  \n"])  # no reply to read: no floor to measure


def test_the_word_model_learns_the_resolved_cases_as_they_come():
    reading = RunText.of([Case("hi", r, None, None, DATASET, i) for i, r in enumerate(_replies())])
    new = "Your parcel left our warehouse today and arrives within three days."
    before = reading.fluency.score(new)  # type: ignore[union-attr]
    reading.add([Case("where is my parcel", new, None, None, DATASET, 0)] * 3)
    assert reading.fluency.score(new) > before  # type: ignore[union-attr]
    assert "parcel" in reading.vocabulary.known
    assert tokens("Hi! Order {{Order Number}}, please.") == ["hi", ".", "order", "{{order number}}", "please", "."]
