"""MkDocs hooks for the API reference: docstrings use reST roles (``:class:`Image```),
which the Markdown renderer leaves as text; drop the role and keep the code span."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):\s*(?=<code>)")
# ``~pkg.mod.Name`` shows only ``Name`` in reST; do the same here.
_TILDE = re.compile(r"<code>~(?:[\w]+\.)*(\w+)</code>")


def on_page_content(html: str, **_: Any) -> str:
    """Remove the role names in front of the code spans they introduce."""
    return _TILDE.sub(r"<code>\1</code>", _ROLE.sub("", html))
