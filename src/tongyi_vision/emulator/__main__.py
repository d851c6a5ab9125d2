"""``python -m tongyi_vision.emulator``: see :func:`tongyi_vision.emulator.main`."""

import sys

from . import main

sys.exit(main())
