"""Turning parts into vectors: settings, planning, scheduling, sending.

- :mod:`.config`: settings resolved once (argument, environment, default); the API key;
- :mod:`.planner`: dedupe parts and pack them into requests within the limits;
- :mod:`.permits`: how many requests may be in flight, with a thread twin and an asyncio twin;
- :mod:`.scheduler`: one request as a generator of effects: retry, split and fail decisions;
- :mod:`.drivers`: running a call's requests on threads or on asyncio tasks;
- :mod:`.progress`: the one progress bar;
- :mod:`.client`: :class:`Client` and :class:`AsyncClient`.

Imports the media and wire packages only, and neither framework.
"""
