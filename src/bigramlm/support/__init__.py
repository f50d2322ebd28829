"""The support-agent assistant: understand a customer's message, suggest brand-aligned
replies, show similar resolved cases, and learn from new ones.

- ``assistant``: the assistant itself; ``intent``: classifiers beside the LM;
  ``retrieval``: similar cases; ``brand``: placeholder profiles; ``store``: resolved
  cases and desk feedback (SQLite); ``learning``: ``learn``; ``evaluation``,
  ``metrics``, ``paraphrases``: ``eval --task support``.
"""
