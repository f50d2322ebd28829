"""The support-agent assistant: understand a customer's message, suggest brand-aligned
replies, show similar resolved cases, and learn from new ones.

By concept, the modules lower in this list never import the ones above them:

- ``assistant``: the orchestration of one request (understand, retrieve, decode, rank);
  ``results``: what it answers, as typed data;
- ``evaluation``: ``eval --task support``, with ``metrics`` (corpus chrF, BLEU,
  ROUGE-L) and ``paraphrases`` (the hand-written messages);
- ``learning``: ``learn`` and its undo, with ``weights_history`` keeping the files from
  before the last learn; ``recipe``: ``train --recipe support``;
- ``understanding``: the calibrated classifier, the language model's own intent scorer
  and the TF-IDF baseline, over ``encoder`` (the sentence encoder);
- ``choice``: what the agent is shown, every draft checked by ``readability`` (non-words,
  loops) and ``fluency`` (a word model of the run's replies, and the floor they reach);
- ``ranking``: the one consensus pick, dismissals and distinctness, over ``chrf`` (the
  one sentence-chrF engine);
- ``retrieval``: similar cases (the train rows' fitted index kept in the run; the team's cases searched in the store);
- ``rulebook``: the team edit rules of a store, read as accepts come;
- ``store``: resolved cases, desk feedback and which learn trained on each case (SQLite);
- ``brand``: placeholder profiles, and ``length``: a reply as it is or short (its
  leading sentences and its closing line), as the profile or the request prefers;
- ``edits``: team edit rules from accepted edits, checked against ``contacts`` (the links,
  email addresses and phone numbers a rule may not add by itself).

The assistant reads nothing but its run directory: training saves the rows, labels and
split it needs there (``bigramlm.data.run_files``). A case is ``bigramlm.data.cases.Case``
everywhere, from the dataset's rows to the store and the desk.
"""
