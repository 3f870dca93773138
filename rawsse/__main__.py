"""``python -m rawsse``: see :mod:`rawsse.cli.main`."""

import sys

from rawsse.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
