"""``python -m alertd``: the same as the ``alertd`` command."""

import sys

from alertd.cli import main

sys.exit(main())
