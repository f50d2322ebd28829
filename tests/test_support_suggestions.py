"""What the agent is shown: readable drafts, resolved replies that say where they come
from, team edits learned from accepts, and the brand's own rules."""

from __future__ import annotations

import pytest

from bigramlm.data.cases import DATASET, DESK, Case
from bigramlm.errors import BigramLMError
from bigramlm.support.brand import BrandProfile
from bigramlm.support.choice import check_drafts, choose
from bigramlm.support.edits import (APPEND, EVERY_INTENT, FORBID, PREPEND, REMOVE, REPLACE, Edit, KnownToRun, Rule, apply,
                                    edits_between, team_rules)
from bigramlm.support.readability import DraftWatch, LoopWatch, RunText, Vocabulary, check, loops, words
from bigramlm.support.store import AcceptedReply

REPLY = "I understand you want to cancel order {{Order Number}}. Visit {{Website URL}} and choose Cancel."
SIGN_OFF = "Warm regards, the Acme Care Team."


def test_non_words_and_loops_are_found_and_real_replies_pass():
    vocabulary = Vocabulary.of([REPLY, "please cancel my purchase"])
    assert check(REPLY, vocabulary).ok
    found = check("I understand gathilarating order {{Order Number}}", vocabulary)
    assert found.non_words == ("gathilarating",) and not found.ok and "gathilarating" in (found.reason() or "")
    assert check("Quuxel understand", vocabulary, "my quuxel broke").ok  # the customer's own word
    assert loops("about the specific details about the specific details about the specific details")
    assert loops("very very very very sorry") and not loops("very very sorry")
    assert not loops(REPLY + " " + REPLY)  # a reply said twice is not yet a loop


WATCHED = [
    REPLY, REPLY + " " + REPLY, REPLY + "\n\n" + SIGN_OFF,
    "I understand you want to cancel order {{Order Number}} and order {{Order Number}} and order {{Order Number}} too.",
    "Visit {{Website URL}} and choose choose choose choose Cancel.",
    "I understand gathilarating order {{Order Number}} today.",
    "Please please cancel my purchase, my quuxel broke.",  # the customer's own word
    "Visit the {{Website  URL\n}} page.",  # no placeholder: braces around a newline are text
    "cancel my purchase please cancel my purchase please cancel my purchase please",
]


@pytest.mark.parametrize("seed", range(4))
def test_a_draft_watch_reads_a_growing_draft_as_check_reads_the_whole(seed):
    """Fed in pieces cut anywhere (inside words and placeholders too), a watch dooms a
    draft iff ``check`` finds a non-word or a loop in it, and once doomed the text so far
    already fails ``check`` (so a decode may end the draft there)."""
    import random

    rng = random.Random(seed)
    vocabulary = Vocabulary.of([REPLY, SIGN_OFF, "please cancel my purchase, my too today page the"])
    for text in WATCHED:
        whole = check(text, vocabulary, "my quuxel broke")
        watch, fed = DraftWatch(vocabulary, "my quuxel broke"), ""
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randrange(1, 30))))
        for a, b in zip([0, *cuts], [*cuts, len(text)]):
            fed += text[a:b]
            if watch(text[a:b]):
                early = check(fed, vocabulary, "my quuxel broke")
                assert early.non_words or early.loops, (text, fed)
                break
        else:
            watch(" ")  # the text's end settles its last word
        assert watch.doomed == bool(whole.non_words or whole.loops), text
        assert LoopWatch().add(words(text)) == loops(text)


def test_edits_are_found_word_by_word():
    assert edits_between(REPLY, REPLY + "\n\n" + SIGN_OFF) == [Edit(APPEND, "", SIGN_OFF, "\n\n")]
    assert edits_between(REPLY, "Hello there! " + REPLY) == [Edit(PREPEND, "", "Hello there!", " ")]
    (replaced,) = edits_between("Refunds take 14 days to arrive.", "Refunds take 30 days to arrive.")
    assert replaced.kind == REPLACE and (replaced.old, replaced.new) == ("take 14 days", "take 30 days")
    (removed,) = edits_between("Done. Thank you for waiting!", "Done.")
    assert removed.kind == REMOVE and removed.removed == "Thank you for waiting!"
    assert edits_between(REPLY, REPLY.replace(" and ", "  and ")) == []  # whitespace is no edit
    assert edits_between(REPLY, REPLY + "!") == []  # nor is punctuation alone


def _accepts(intent: str, edited: int, plain: int, change=lambda s: s + "\n\n" + SIGN_OFF, agent: str | None = None):
    """Accepted replies of ``intent``: ``edited`` that ``agent`` changed, then ``plain`` sent as shown."""
    return ([AcceptedReply(0, intent, agent, REPLY, REPLY, change(REPLY))] * edited
            + [AcceptedReply(0, intent, agent, REPLY, REPLY, REPLY)] * plain)


KNOWN = KnownToRun(frozenset({"cancel_order", "get_refund", "track_order", "a", "b", "c"}))


def test_an_edit_most_recent_accepts_make_becomes_a_rule_for_that_intent_only():
    assert team_rules(_accepts("cancel_order", 2, 0), KNOWN) == []  # too few
    assert team_rules(_accepts("cancel_order", 3, 4), KNOWN) == []  # most of the recent replies do not carry it
    (rule,) = team_rules(_accepts("cancel_order", 3, 2) + _accepts("get_refund", 0, 5), KNOWN)
    assert rule.scope == "cancel_order" and rule.support == 3 and rule.edit.kind == APPEND
    assert "in 3 accepted replies" in rule.describe()
    text, made, shown = apply("Sure, order {{Order Number}} is cancelled.", [rule], "cancel_order")
    assert text.endswith("\n\n" + SIGN_OFF) and made == [rule] and shown
    assert apply("Your refund is on its way.", [rule], "get_refund")[1] == []  # no spill-over
    # Applied once: a suggestion that already ends with it is left alone.
    assert apply(text, [rule], "cancel_order") == (text, [], True)


def test_an_edit_of_many_intents_by_several_agents_applies_to_every_intent():
    accepts = sum((_accepts(i, 3, 0, agent=agent) for i, agent in (("a", "ann"), ("b", "bo"), ("c", "ann"))), [])
    (rule,) = team_rules(accepts, KNOWN)
    assert rule.scope == EVERY_INTENT and rule.support == 9 and rule.agents == {"ann", "bo"}
    assert apply("Hi.", [rule], "z")[0].endswith(SIGN_OFF)


def test_a_disabled_rule_does_nothing_and_ids_are_stable():
    (rule,) = team_rules(_accepts("cancel_order", 3, 0), KNOWN)
    assert rule.id == team_rules(_accepts("cancel_order", 4, 0), KNOWN)[0].id  # support does not change the id
    off = Rule(rule.edit, rule.scope, rule.support, enabled=False)
    assert apply("Hi.", [off], "cancel_order") == ("Hi.", [], True)


def test_brand_rules_load_and_forbid_hides_a_suggestion(tmp_path):
    path = tmp_path / "brand.toml"
    path.write_text('[[rules]]\nkind = "append"\ntext = "Warm regards."\nintents = ["get_refund"]\n\n'
                    '[[rules]]\nkind = "forbid"\ntext = "free shipping"\n\n'
                    '[[rules]]\nkind = "replace"\nold = "14 days"\nnew = "30 days"\n', encoding="utf-8")
    rules = BrandProfile.load(path).rules
    assert [(r.edit.kind, r.scope, r.origin) for r in rules] == [(APPEND, "get_refund", "brand profile"),
                                                                  (FORBID, EVERY_INTENT, "brand profile"),
                                                                  (REPLACE, EVERY_INTENT, "brand profile")]
    assert apply("We offer Free Shipping today.", rules, "get_refund")[2] is False
    assert apply("Refunds take 14 days.", rules, "get_refund")[0] == "Refunds take 30 days.\n\nWarm regards."
    for bad in ('[[rules]]\nkind = "shout"\n', '[[rules]]\nkind = "replace"\nold = "x"\n', 'rules = 5\n',
                '[[rules]]\nkind = "append"\ntext = "x"\nintents = []\n'):
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(BigramLMError, match="brand profile"):
            BrandProfile.load(path)


def test_the_drafts_chrf_is_computed_once_and_reads_as_computed_per_group(monkeypatch):
    from bigramlm.support import chrf, ranking
    from bigramlm.support.choice import agreement_of

    evidence = [Case(f"m{i}", REPLY.replace("Cancel", f"Cancel {i}"), "cancel_order", None, DATASET, i) for i in range(8)]
    drafts_text = [REPLY, REPLY.replace("choose", "select"), "### " + REPLY, SIGN_OFF]
    agreement = agreement_of(drafts_text, evidence)
    group = [REPLY, SIGN_OFF, evidence[3].reply, REPLY]  # any group of its texts, repeats too
    assert (agreement.among(group) == chrf.pairwise_chrf(group)).all()
    calls = []
    monkeypatch.setattr(ranking, "pairwise_chrf", lambda texts: calls.append(len(texts)) or chrf.pairwise_chrf(texts))
    reading = RunText(Vocabulary.of([REPLY, SIGN_OFF, *(c.reply for c in evidence), "select"]))
    agreement = agreement_of(drafts_text, evidence)
    drafts = check_drafts(drafts_text, evidence, reading, "cancel", agreement)
    choose(drafts, evidence, 3, agreement=agreement)
    assert len(calls) == 1  # one matrix for the draft ranking and the choice


def test_unreadable_drafts_are_replaced_by_resolved_replies_that_say_so():
    evidence = [Case(REPLY, REPLY, "cancel_order", None, DESK, 12),
                Case("cancel it", "Sure, order {{Order Number}} is cancelled now.", "cancel_order", None, DATASET, 345)]
    vocabulary = Vocabulary.of([c.reply for c in evidence] + ["Sure"])
    drafts = check_drafts(["I gathilarating cancel", "cancel cancel cancel cancel", ""], evidence, RunText(vocabulary), "cancel")
    assert [d.readable for d in drafts] == [False, False]  # the empty one is no draft
    shown = choose(drafts, evidence, 3)
    assert shown and all(c.source != "model" for c in shown)
    assert {c.label for c in shown} <= {"resolved case #12", "training row #345"}
    assert not any(d.shown for d in drafts)
    # A readable draft more central than the resolved replies is shown first, as the model's.
    other = REPLY.replace("choose", "select").replace("Visit", "Open")
    near = [Case(REPLY, REPLY, "cancel_order", None, DESK, 12), Case(other, other, "cancel_order", None, DATASET, 9)]
    drafts = check_drafts([REPLY.replace("choose", "select")], near, RunText(Vocabulary.of([REPLY, other])), "")
    assert choose(drafts, near, 1)[0].label == "model draft" and drafts[0].shown
