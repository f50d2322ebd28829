"""The agent desk: a FastAPI app (page, JSON API, OpenAI-compatible routes) over the assistant.

``app`` (the factory ``create_app``), ``server`` (``serve``: uvicorn), ``routes/`` (one router per
concern), ``schemas`` (request and response models), ``middleware`` (access log, request guard,
security headers), ``errors`` (error responses), ``desk`` (the loaded run and assistant, the
store, reloading), ``slots`` (the cap on concurrent generations), ``sse`` (event streams),
``completions`` (OpenAI-compatible bodies), ``docs`` (``/docs`` without a CDN), ``network``
(loopback, ``Host`` names, binding), ``limits`` (``ServerLimits``, light enough for the CLI).
"""
