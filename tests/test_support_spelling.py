"""Typos mended before a message is understood (support.spelling): towards the run's words,
never a word that is one, and kept with the run's understanding."""

from __future__ import annotations

import pytest

from bigramlm.support.spelling import MIN_COUNT, Speller
from bigramlm.support.understanding import Understander

RUN_WORDS = {"canceling": 40, "cancellations": 12, "order": 90, "with": 200, "removing": 15, "shipping": 30,
             "payments": 25, "sender": 9, "express": 30, "refund": 60, "account": 80, "accounts": 8,
             "charges": 20, "issue": 70}


@pytest.mark.parametrize("typed, read", [
    ("need help cfanceling order 5521", "need help canceling order 5521"),   # a letter too many
    ("question about freemium account canclelations", "question about freemium account cancellations"),  # two edits, long word
    ("I need assistance removign the gold account", "I need assistance removing the gold account"),  # two letters swapped
    ("what is the shpiping period?", "what is the shipping period?"),
    ("my acount", "my account"),
    ("need assistance withcanceling purchase", "need assistance with canceling purchase"),  # run together
])
def test_a_typo_reads_as_the_run_word_it_misspells(typed, read):
    assert Speller(RUN_WORDS).mend(typed) == read


@pytest.mark.parametrize("text", [
    "I forgot the charger",                # a word, one edit from the run's "charges": kept
    "declined by issuer",                  # not "issue"
    "the blender arrived broken",
    "ready to buy the espresso machine",   # not "express"
    "can you resend the invoice",          # not "refund"
    "my name is Siobhan",                  # nothing near enough in the run: kept
])
def test_words_and_what_nothing_is_near_are_kept(text):
    assert Speller(RUN_WORDS).mend(text) == text


def test_a_tie_goes_to_the_commoner_run_word_and_short_words_are_kept():
    speller = Speller({"accounts": 8, "account": 80, "cat": 50})
    assert speller.mend("accountz") == "account"  # one edit from both: the commoner
    assert speller.mend("cst") == "cst"  # too short to mend


def test_the_speller_takes_the_words_the_run_uses_often():
    speller = Speller.of(["cancel my order", "Cancel the ORDER please", "cancel order now", "cancle"])
    assert speller.targets == {"cancel": MIN_COUNT, "order": MIN_COUNT}


def test_the_understanding_keeps_its_speller(tmp_path):
    import numpy as np

    from bigramlm.support.understanding import EmbeddingIntentClassifier

    classifier = EmbeddingIntentClassifier(["a", "b"], np.zeros((2, 4), dtype=np.float32), np.zeros(2, dtype=np.float32))
    understander = Understander(classifier, 1.0, {"a": None, "b": None}, np.eye(4, dtype=np.float32)[:2])
    understander.speller = Speller(RUN_WORDS)
    understander.save(tmp_path, ["a", "b"])
    loaded, _ = Understander.load(tmp_path)
    assert loaded.speller is not None and loaded.speller.targets == RUN_WORDS
    assert loaded.speller.mend("cfanceling") == "canceling"
