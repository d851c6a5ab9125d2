"""The contract with the service: what may be sent, what is sent and answered, what comes back.

- :mod:`.limits`: models, vector sizes, per-part and per-request limits, prices, the
  text-token estimate;
- :mod:`.formats`: image and video formats told from their first bytes;
- :mod:`.models`: the pydantic models of both dialects' bodies and answers;
- :mod:`.dialects`: building a body and reading an answer, its usage or its error;
- :mod:`.results`: vectors, usage and cost, partial results and progress events;
- :mod:`.errors`: the error tree every layer raises.

The client and the emulator both read the contract from here, so the two cannot drift
apart; this package imports nothing else of ``tongyi_vision``. Import public names from
``tongyi_vision`` itself.
"""
