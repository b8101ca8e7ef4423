"""`python -m kdbench ...` is the same as the `kdbench` console script."""

import sys

from kdbench.cli import main

sys.exit(main())
