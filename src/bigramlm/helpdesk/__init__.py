"""Inside the helpdesk: suggestions posted where agents work, resolved conversations stored.

- ``core``: what every connector shares: the suggestions for a conversation as a note
  (``Assist``), a resolved conversation as a case, and the guard that drops stale ones.
- ``outbox``: outbound calls done in the background, retried with bounded backoff.
- ``secrets``: tokens from a file or the environment, never the command line.
- ``chatwoot``, ``zammad``: webhook events read and answered through their REST APIs.
- ``rt``: Request Tracker 5 watched through REST 2.

The webhook routes are ``serve.routes.helpdesk``; ``bigramlm connect`` starts them (or RT's watcher).
"""
