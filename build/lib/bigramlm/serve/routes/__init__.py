"""The desk's routes, one router per concern: ``meta`` (page, health, config), ``desk``
(suggestions), ``cases`` (resolved cases, stats), ``feedback`` (dismissed suggestions),
``openai`` (``/v1``).

Each route gets the desk and the limits by dependency injection (``deps``). A router whose
request bodies carry bounds is made by ``router(schemas)`` for one app, because those
bounds come from that app's ``ServerLimits``: the body classes are the only thing its
handlers take from the enclosing call.
"""
