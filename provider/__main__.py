"""``python -m provider``: the same entry point as the ``polysecret`` script."""

import sys

from provider.cli import main

sys.exit(main())
