"""Placeholders filled from what the customer's message plainly says (support.message_values)."""

from __future__ import annotations

import pytest

from bigramlm.support.brand import BrandProfile
from bigramlm.support.settings import SuggestSettings
from bigramlm.support.message_values import message_values


@pytest.mark.parametrize("message, expected", [
    ("I want to cancel order 5521", {"Order Number": "5521"}),
    ("where is my order #A-7781?", {"Order Number": "A-7781"}),
    ("Order no. 99812 never came", {"Order Number": "99812"}),
    ("please send invoice INV-2024-001", {"Invoice Number": "INV-2024-001"}),
    ("tracking number 1Z999AA10123456784 shows nothing", {"Tracking Number": "1Z999AA10123456784"}),
])
def test_values_stated_next_to_their_name_are_taken(message, expected):
    assert {k: v for k, v in message_values(message).items() if k in expected} == expected


@pytest.mark.parametrize("message", [
    "what is my order status",            # no number after "order"
    "cancel order 5521 and order 7730",   # two orders: which one is the agent's to say
    "I ordered 3 shirts",                 # "ordered" is not "order"
    "I paid $30 yesterday",               # an amount, but no refund asked for
    "call me at 555-0100",                # a number that names nothing here
])
def test_nothing_is_taken_that_the_message_does_not_plainly_say(message):
    values = message_values(message)
    assert "Order Number" not in values and "Refund Amount" not in values and "Invoice Number" not in values


def test_amounts_and_emails():
    values = message_values("I want a refund of $45.99, write to me at ana.diaz@example.com")
    assert values["Refund Amount"] == "$45.99" and values["Email Address"] == "ana.diaz@example.com"
    assert message_values("refund 30 euros please")["Refund Amount"] == "30 euros"


def test_the_brand_fills_first_and_the_message_fills_what_is_left():
    brand = BrandProfile(values={"Company Name": "Acme"}, known={"Company Name", "Order Number", "Invoice Number"})
    result = brand.fill("{{Company Name}} has cancelled order {{Order Number}}; invoice {{Invoice Number}} follows.",
                        message_values("cancel order 5521"))
    assert result.text == "Acme has cancelled order 5521; invoice {{Invoice Number}} follows."
    assert result.from_message == {"Order Number": "5521"} and result.unfilled == ["Invoice Number"]
    plain = brand.fill("order {{Order Number}}")
    assert plain.text == "order {{Order Number}}" and plain.from_message == {} and plain.unfilled == ["Order Number"]


def test_the_assistant_fills_the_order_number_from_the_message(tmp_path):
    from bigramlm.support.assistant import Assistant
    from desk_helpers import train_support_run

    assistant = Assistant.load(train_support_run(tmp_path))
    result = assistant.suggest("I want to cancel order 5521", SuggestSettings(n=3, seed=1, max_new_tokens=120))
    filled = [s for s in result.suggestions if s.from_message]
    assert filled, [s.filled_text for s in result.suggestions]
    for s in filled:
        assert s.from_message == {"Order Number": "5521"}
        assert "5521" in s.filled_text and "{{Order Number}}" not in s.filled_text and "Order Number" not in s.unfilled_placeholders
