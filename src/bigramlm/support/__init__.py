"""The support-agent assistant: understand a customer's message, suggest brand-aligned
replies, show similar resolved cases, and learn from new ones.

- ``assistant``: the assistant itself; ``results``: what it answers, as typed data;
  ``intent``: classifiers beside the LM; ``retrieval``: similar cases (its fitted index
  kept in the run); ``brand``: placeholder profiles; ``store`` (``store_schema``):
  resolved cases, desk feedback and which learn trained on each case (SQLite);
  ``learning``: ``learn`` and its undo, with ``weights_history`` keeping the weights
  from before the last learn; ``evaluation``, ``metrics``, ``paraphrases``:
  ``eval --task support``.

The assistant reads nothing but its run directory: training saves the rows, labels and
split it needs there (``bigramlm.data.run_files``).
"""
