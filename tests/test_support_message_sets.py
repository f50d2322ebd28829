"""The hand-written message sets (paraphrases, everyday, out of scope, and the phrasings that
are trained on) load, are balanced and are kept apart from each other and from the dataset, so
that figures on them measure what the assistant does beyond its training rows."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from bigramlm.errors import BigramLMError
from bigramlm.support.paraphrases import load_everyday, load_out_of_scope, load_paraphrases, load_phrasings

#: The 27 intents of the Bitext customer-support dataset and their categories (checked
#: against the sample below where it is present).
CATEGORY = {
    "create_account": "ACCOUNT", "delete_account": "ACCOUNT", "edit_account": "ACCOUNT",
    "recover_password": "ACCOUNT", "registration_problems": "ACCOUNT", "switch_account": "ACCOUNT",
    "check_cancellation_fee": "CANCEL",
    "contact_customer_service": "CONTACT", "contact_human_agent": "CONTACT",
    "delivery_options": "DELIVERY", "delivery_period": "DELIVERY",
    "complaint": "FEEDBACK", "review": "FEEDBACK",
    "check_invoice": "INVOICE", "get_invoice": "INVOICE",
    "cancel_order": "ORDER", "change_order": "ORDER", "place_order": "ORDER", "track_order": "ORDER",
    "check_payment_methods": "PAYMENT", "payment_issue": "PAYMENT",
    "check_refund_policy": "REFUND", "get_refund": "REFUND", "track_refund": "REFUND",
    "change_shipping_address": "SHIPPING", "set_up_shipping_address": "SHIPPING",
    "newsletter_subscription": "SUBSCRIPTION",
}


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _sample_instructions(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_everyday_has_a_dozen_messages_for_each_intent_with_its_category():
    items = load_everyday()
    assert all(set(item) == {"message", "intent", "category"} for item in items)
    counts = Counter(item["intent"] for item in items)
    assert set(counts) == set(CATEGORY)  # every intent, none unknown
    assert min(counts.values()) >= 12, {intent: n for intent, n in counts.items() if n < 12}
    assert all(item["category"] == CATEGORY[item["intent"]] for item in items)


def test_phrasings_cover_every_intent_with_its_category():
    items = load_phrasings()
    counts = Counter(item["intent"] for item in items)
    assert set(counts) == set(CATEGORY) and min(counts.values()) >= 15
    assert all(item["category"] == CATEGORY[item["intent"]] for item in items)
    assert not [m for m, n in Counter(_norm(item["message"]) for item in items).items() if n > 1]


def test_no_phrasing_is_near_a_message_it_is_measured_on():
    """The phrasings are trained on: none may stand within cosine 0.9 of a message of the
    sets the understanding is measured or calibrated on, or the figures would flatter it."""
    from bigramlm.support.encoder import shared_encoder

    encoder = shared_encoder()
    taught = encoder.encode([item["message"] for item in load_phrasings()])
    measured = encoder.encode([item["message"] for load in (load_paraphrases, load_everyday, load_out_of_scope)
                               for item in load()])
    assert float((taught @ measured.T).max()) < 0.9


def test_the_intent_categories_are_the_datasets(bitext_sample_path):
    rows = _sample_instructions(bitext_sample_path)
    assert {(row["intent"], row["category"]) for row in rows} == set(CATEGORY.items())


def test_out_of_scope_has_enough_messages_each_with_a_kind():
    items = load_out_of_scope()
    assert len(items) >= 150
    assert all(set(item) == {"message", "kind"} and item["kind"].strip() for item in items)
    assert len({item["kind"] for item in items}) >= 20  # many kinds, not one big bucket
    assert not any(item["message"].strip() in CATEGORY for item in items)


def test_no_message_is_in_two_sets_or_twice_in_one():
    messages = [item["message"] for load in (load_paraphrases, load_everyday, load_out_of_scope) for item in load()]
    repeated = [m for m, n in Counter(_norm(m) for m in messages).items() if n > 1]
    assert not repeated


def test_no_hand_written_message_is_a_dataset_instruction(bitext_sample_path):
    instructions = {_norm(row["instruction"]) for row in _sample_instructions(bitext_sample_path)}
    ours = [item["message"] for load in (load_everyday, load_out_of_scope, load_phrasings) for item in load()]
    assert len(instructions) > 1000
    assert not [m for m in ours if _norm(m) in instructions]


@pytest.mark.parametrize("load", [load_paraphrases, load_everyday, load_out_of_scope, load_phrasings])
@pytest.mark.parametrize("bad, says", [
    ('{"message": "where is my order", "intent": ', "line 3: "),   # not JSON
    ('["where is my order", "track_order"]', "line 3 needs a message"),  # not an object
    ('{"message": "   ", "intent": "track_order", "kind": "x"}', "line 3 needs a message"),  # blank
])
def test_a_malformed_line_is_one_error_naming_the_file_and_line(tmp_path, load, bad, says):
    path = tmp_path / "set.jsonl"
    good = '{"message": "hello there", "intent": "contact_human_agent", "kind": "greeting"}'
    path.write_text(f"{good}\n\n{bad}\n{good}\n", encoding="utf-8")
    with pytest.raises(BigramLMError) as info:
        load(path)
    text = str(info.value)
    assert str(path) in text and says in text and "\n" not in text


def test_the_loaders_require_only_their_own_fields(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"message": "asdfgh"}\n', encoding="utf-8")
    assert load_out_of_scope(path) == [{"message": "asdfgh"}]  # kind is optional
    with pytest.raises(BigramLMError, match=r"line 1 needs a message and an intent, both text"):
        load_everyday(path)
    path.write_text('{"message": "asdfgh", "kind": 3}\n', encoding="utf-8")
    with pytest.raises(BigramLMError, match=r"line 1: kind must be text"):
        load_out_of_scope(path)
