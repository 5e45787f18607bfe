"""``python -m magnipath.cli``: the same as the ``magnipath`` command."""

import sys

from magnipath.cli import main

if __name__ == "__main__":
    sys.exit(main())
