"""``python -m magnipath.cli``: the same as the ``magnipath`` command."""

import sys

from magnipath.cli import main

sys.exit(main())
