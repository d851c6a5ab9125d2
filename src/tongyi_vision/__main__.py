"""``python -m tongyi_vision``: the ``tongyi-vision`` command."""

import sys

from .cli.app import main

sys.exit(main())
