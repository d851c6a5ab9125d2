"""``python -m tongyi_vision``: the ``tongyi-vision`` command."""

import sys

from .cli import main

sys.exit(main())
