"""Understanding on real wording, and knowing when no intent fits: one run, the levers side by side.

On a recipe run (``--run``), each reader is measured on the run's test split, the packaged
paraphrases and the hand-written everyday set (``resources/everyday.jsonl``, kept apart
from training and from calibration), against the packaged out-of-scope messages
(``resources/out_of_scope.jsonl``):

- ``tfidf-logreg``: TF-IDF over character n-grams + logistic regression, the classic baseline;
- ``before``: the understanding of two releases ago (the dataset rows' embeddings, each
  intent weighted up to 100 messages only, no scope: its top probability is all it has to
  say "none fits");
- ``weights``: intents above the median weighted down to it (``class_weights``), no scope;
- ``known alone``: with a scope of the known messages only (no contrast with the
  out-of-scope ones), its threshold the lowest paraphrase's score;
- ``dataset rows``: the last release: ``class_weights`` and ``support.scope`` over the
  dataset rows alone, C=10, the threshold the lowest paraphrase's score;
- ``+ slot values, greetings``: the dataset rows plus a copy of each with its ``{{slots}}``
  filled with values and a greeting or sign-off added (the augmentation lever);
- ``+ phrasings``: the dataset rows and the hand-written phrasings
  (``resources/phrasings.jsonl``, ``PHRASING_WEIGHT``), C=30, the scope calibrated on the
  paraphrases and the phrasings 2-fold (``LOSE_AT_MOST``);
- ``now (+ phrasings, nearest vote)``: the run's understanding: that, its probabilities
  averaged with a vote of the 10 nearest stored messages (``VOTERS``, the ensemble lever).

For each: intent accuracy (micro, and macro over intents; "no intent fits" counts as wrong),
**confidently wrong** (a wrong intent given as sure: neither unsure nor out of scope), the
out-of-scope AUROC (everyday messages against out-of-scope ones, by the reader's in-scope
score) and the operating point as two rates: everyday and test messages **lost** to "no
intent fits", and out-of-scope messages that **get a confident intent**. The scope's own
reference holds the out-of-scope set, so the scoped readers' out-of-scope figures are
2-fold: each half is scored against a scope built from the other half (its threshold
calibrated again). Last, **mismatched replies**: over the test split and the everyday set,
the replies that stand for an answer (the evidence a suggestion may be taken from) that are
of another intent than the one shown.

    .venv/bin/python benchmarks/understanding.py --run runs/support [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

#: A reader: messages -> (intent or None when it says none fits, unsure, in-scope score).
Reader = Callable[[list[str]], tuple[list[str | None], list[bool], np.ndarray]]


@dataclass
class Figures:
    reader: str
    test_accuracy: float
    test_accuracy_macro: float
    paraphrase_accuracy: float
    everyday_accuracy: float
    everyday_accuracy_macro: float
    everyday_confidently_wrong: float
    test_confidently_wrong: float
    out_of_scope_auroc: float
    everyday_lost: float
    test_lost: float
    out_of_scope_confident: float


def accuracy(pred: list[str | None], gold: list[str]) -> tuple[float, float]:
    right = [p == g for p, g in zip(pred, gold)]
    per = {g: np.mean([r for r, h in zip(right, gold) if h == g]) for g in set(gold)}
    return float(np.mean(right)), float(np.mean(list(per.values())))


def confident(pred: list[str | None], unsure: list[bool]) -> np.ndarray:
    return np.array([p is not None and not u for p, u in zip(pred, unsure)])


def measure(name: str, read: Reader, sets: dict[str, tuple[list[str], list[str]]], oos: list[str],
            oos_read: Reader | None = None) -> Figures:
    from sklearn.metrics import roc_auc_score

    out = {k: read(m) for k, (m, _) in sets.items()}
    o_pred, o_unsure, o_score = (oos_read or read)(oos)
    e_pred, e_unsure, e_score = out["everyday"]
    t_pred, t_unsure, _ = out["test"]
    wrong = {k: float(np.mean(confident(p, u) & np.array([x != g and x is not None for x, g in zip(p, sets[k][1])])))
             for k, (p, u, _) in out.items()}
    return Figures(
        name, *accuracy(t_pred, sets["test"][1]), accuracy(out["paraphrases"][0], sets["paraphrases"][1])[0],
        *accuracy(e_pred, sets["everyday"][1]), wrong["everyday"], wrong["test"],
        float(roc_auc_score(np.r_[np.ones(len(e_score)), np.zeros(len(o_score))], np.r_[e_score, o_score])),
        float(np.mean([p is None for p in e_pred])), float(np.mean([p is None for p in t_pred])),
        float(np.mean(confident(o_pred, o_unsure))),
    )


def readers(run: str) -> dict[str, tuple[Reader, Reader | None]]:
    from bigramlm.support.assistant import Assistant
    from bigramlm.support.scope import calibrate
    from bigramlm.support.understanding import MIN_CLASS_WEIGHT, UNSURE_BELOW, IntentBaseline, Understander

    assistant = Assistant.load(run, use_store=False)
    u = assistant.understander
    if u is None or u.message_embeddings is None or u.scope is None:
        raise SystemExit(f"{run} has no understanding with a scope: train it with --recipe support")
    loaded = Understander.load(assistant.run.path)
    assert loaded is not None
    labels = np.array(loaded[1])
    rows = [r for r in assistant.data.train_rows if r.intent]
    dataset = np.arange(len(labels)) < len(rows)  # the stored messages: the train rows, then the phrasings
    tfidf = IntentBaseline([r.message for r in rows], [str(r.intent) for r in rows])
    norm = lambda ms: [assistant.normalize(m)[0] for m in ms]  # noqa: E731

    def read_tfidf(ms: list[str]):
        probs = tfidf.pipeline.predict_proba(norm(ms))
        return [str(tfidf.pipeline.classes_[i]) for i in probs.argmax(1)], list(probs.max(1) < UNSURE_BELOW), probs.max(1)

    def read_now(ms: list[str], scope=u.scope, understander=u):
        saved, understander.scope = understander.scope, scope
        try:
            preds = understander.predict(norm(ms))
        finally:
            understander.scope = saved
        scores = [p.probability if p.scope_score is None else p.scope_score for p in preds]
        return ([None if p.out_of_scope else p.intent for p in preds],
                [p.probability < UNSURE_BELOW for p in preds], np.array(scores))

    def variant(embeddings, names, weights=None, c=10.0, lose_at_most=0.0, scope=True, written=None):
        """An understander fitted as the run's, on other messages, weights or settings."""
        return _variant(assistant, u, embeddings, names, weights, c, (lose_at_most, written) if scope else None)

    counts = {i: int(np.sum(labels[dataset] == i)) for i in set(labels[dataset])}
    old_weights = np.array([max(1.0, MIN_CLASS_WEIGHT / counts[i]) for i in labels[dataset]])
    before = variant(u.message_embeddings[dataset], labels[dataset], old_weights, scope=False)
    before.classifier = _fit_raw(u.message_embeddings[dataset], labels[dataset], old_weights)
    weights = variant(u.message_embeddings[dataset], labels[dataset], scope=False)
    rows_only = variant(u.message_embeddings[dataset], labels[dataset])
    alone = calibrate(u.embed, rows_only.message_embeddings, set(u.classes), np.zeros((0, u.message_embeddings.shape[1])),
                      lose_at_most=0.0)
    no_vote = _without_vote(u)
    augmented = _augmented(assistant, u, labels[dataset], [r.message for r in rows], variant)
    found: dict[str, tuple[Reader, Reader | None]] = {
        "tfidf-logreg": (read_tfidf, None),
        "before": (lambda ms: read_now(ms, None, before), None),
        "weights": (lambda ms: read_now(ms, None, weights), None),
        "known alone": (lambda ms: read_now(ms, alone, rows_only), None),
        "dataset rows": (lambda ms: read_now(ms, rows_only.scope, rows_only), _two_fold(rows_only, read_now)),
        "+ slot values, greetings": (lambda ms: read_now(ms, augmented.scope, augmented), _two_fold(augmented, read_now)),
        "+ phrasings": (lambda ms: read_now(ms, u.scope, no_vote), _two_fold(no_vote, read_now)),
        "now (+ phrasings, nearest vote)": (read_now, _two_fold(u, read_now)),
    }
    return found


def _variant(assistant, u, embeddings, names, weights, c, scoped):
    """A copy of the run's understander refitted on ``embeddings`` of intents ``names``
    (temperature on the val rows, as the recipe calibrates), with a scope if ``scoped``
    is (lose_at_most, written)."""
    from bigramlm.data.instructions import read_split_rows
    from bigramlm.support.scope import calibrate
    from bigramlm.support.calibration import fit_temperature
    from bigramlm.support.understanding import EmbeddingIntentClassifier, Understander

    v = Understander(u.classifier, u.temperature, u.categories, np.asarray(embeddings), u.encoder)
    v.classifier = EmbeddingIntentClassifier.fit(v.message_embeddings, list(names), c=c, weights=weights)
    val = [r for r in read_split_rows(assistant.spec, assistant.data, "val") if r.intent in v.classes]
    v.temperature = fit_temperature(v.classifier.scores(_val_embeddings(assistant, u, val)),
                                    np.array([v.classes.index(str(r.intent)) for r in val]))
    if scoped is not None:
        v.scope = calibrate(u.embed, v.message_embeddings, set(v.classes), u.scope.outside,
                            written=scoped[1], lose_at_most=scoped[0])
    return v


_VAL: dict[int, np.ndarray] = {}


def _val_embeddings(assistant, u, val) -> np.ndarray:
    """The val rows' embeddings, once per run (every variant calibrates on them)."""
    if id(u) not in _VAL:
        _VAL[id(u)] = u.embed([assistant.normalize(r.message)[0] for r in val])
    return _VAL[id(u)]


def _fit_raw(embeddings, names, weights):
    """The classifier as fitted before ``class_weights``: small intents weighted up to 100 messages only."""
    from sklearn.linear_model import LogisticRegression

    from bigramlm.support.understanding import EmbeddingIntentClassifier

    model = LogisticRegression(max_iter=2000, C=10.0).fit(embeddings, list(names), sample_weight=weights)
    return EmbeddingIntentClassifier([str(k) for k in model.classes_], model.coef_, model.intercept_)


#: Values for the dataset's slots, and greetings and sign-offs, for the augmentation reader.
SLOT_VALUES = {"Order Number": ["#48213", "order 99012", "1138", "A-5521"], "Person Name": ["Anna", "Tom Baker", "Priya"],
               "Account Category": ["premium", "gold", "business"], "Account Type": ["pro", "standard", "family"],
               "Refund Amount": ["49.99", "$120", "€35"], "Currency Symbol": ["$", "€", "£"],
               "Delivery City": ["Leeds", "Austin"], "Invoice Number": ["INV-2291", "88120"]}
GREETINGS = ["hi, ", "hello, ", "Hi there! ", "hey ", "Good morning, "]
SIGN_OFFS = [" thanks", " Thank you!", " thx", ". Cheers, Sam", ". Regards, Maria"]


def _augmented(assistant, u, names, messages, variant):
    """The dataset rows plus one copy of each, its {{slots}} filled with values and a greeting
    or sign-off added to most: the augmentation lever, fitted and scoped as the dataset rows."""
    import random
    import re

    rng = random.Random(0)

    def copy(text: str) -> str:
        text = re.sub(r"\{\{([^}]+)\}\}", lambda m: rng.choice(SLOT_VALUES.get(m.group(1), [m.group(0)])), text)
        r = rng.random()
        return (rng.choice(GREETINGS) if r < 0.5 else "") + text + (rng.choice(SIGN_OFFS) if r > 0.3 else "")

    extra = u.embed([assistant.normalize(copy(m))[0] for m in messages])
    dataset = u.message_embeddings[: len(messages)]
    return variant(np.r_[dataset, extra], np.r_[names, names])


def _without_vote(u):
    """The run's understander without the vote of the nearest stored messages."""
    import copy

    v = copy.copy(u)
    v.message_intents = None
    return v


def _two_fold(u, read_now) -> Reader:
    """Out-of-scope messages read against a scope built and calibrated from the other half of the set."""
    from bigramlm.support.paraphrases import load_out_of_scope
    from bigramlm.support.scope import LOSE_AT_MOST, calibrate

    every = [m["message"] for m in load_out_of_scope()]
    embedded = u.embed(every)
    halves = np.arange(len(every)) % 2
    written = u.phrasing_rows
    lose = LOSE_AT_MOST if written is not None and written.any() else 0.0
    scopes = [calibrate(u.embed, u.message_embeddings, set(u.classes), embedded[halves != h], written=written,
                        lose_at_most=lose) for h in (0, 1)]

    def read(ms: list[str]):
        position = {m: i for i, m in enumerate(every)}
        out: tuple[list[str | None], list[bool], list[float]] = ([], [], [])
        for m in ms:
            pred, unsure, score = read_now([m], scopes[halves[position[m]]], u)
            out[0].append(pred[0]), out[1].append(unsure[0]), out[2].append(float(score[0]))
        return out[0], out[1], np.array(out[2])

    return read


def _softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mismatched_replies(run: str, messages: list[str]) -> tuple[int, int]:
    """Replies standing for an answer that are of another intent than the one shown, of all of them."""
    from bigramlm.support.assistant import Assistant
    from bigramlm.support.ranking import EVIDENCE_CASES

    assistant = Assistant.load(run, use_store=False)
    requests = assistant.reader.read(messages, k_similar=3, evidence=EVIDENCE_CASES)
    cases = [(c, r.understanding.intent) for r in requests for c in r.evidence]
    return sum(c.intent != intent for c, intent in cases), len(cases)


def main(argv: list[str] | None = None) -> int:
    from bigramlm.data.instructions import read_split_rows
    from bigramlm.support.assistant import Assistant
    from bigramlm.support.paraphrases import load_everyday, load_out_of_scope, load_paraphrases

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a --recipe support run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    assistant = Assistant.load(args.run, use_store=False)
    test = read_split_rows(assistant.spec, assistant.data, "test")
    sets = {"test": ([r.message for r in test], [str(r.intent) for r in test]),
            "paraphrases": ([m["message"] for m in load_paraphrases()], [m["intent"] for m in load_paraphrases()]),
            "everyday": ([m["message"] for m in load_everyday()], [m["intent"] for m in load_everyday()])}
    oos = [m["message"] for m in load_out_of_scope()]
    figures = [measure(name, read, sets, oos, oos_read) for name, (read, oos_read) in readers(args.run).items()]
    bad, total = mismatched_replies(args.run, sets["test"][0] + sets["everyday"][0])
    if args.json:
        print(json.dumps({"figures": [asdict(f) for f in figures], "mismatched_replies": bad, "replies": total}))
        return 0
    print("| reader | test (micro / macro) | paraphrases | everyday (micro / macro) | confidently wrong, everyday / test "
          "| out-of-scope AUROC | lost to out of scope, everyday / test | out of scope given a confident intent |")
    print("|---|---|---|---|---|---|---|---|")
    for f in figures:
        print(f"| {f.reader} | {f.test_accuracy:.3f} / {f.test_accuracy_macro:.3f} | {f.paraphrase_accuracy:.3f} | "
              f"{f.everyday_accuracy:.3f} / {f.everyday_accuracy_macro:.3f} | {f.everyday_confidently_wrong:.1%} / "
              f"{f.test_confidently_wrong:.1%} | {f.out_of_scope_auroc:.3f} | {f.everyday_lost:.1%} / {f.test_lost:.1%} | "
              f"{f.out_of_scope_confident:.1%} |")
    print(f"\nmismatched replies (of another intent than the one shown), test split and everyday set: {bad} of {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
