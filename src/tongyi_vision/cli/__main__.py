"""``python -m tongyi_vision.cli``: the ``tongyi-vision`` command."""

import sys

from .app import main

sys.exit(main())
