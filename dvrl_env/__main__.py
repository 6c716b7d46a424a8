"""``python -m dvrl_env`` is the ``dvrl`` command line."""

import sys

from dvrl_env.app.cli import main

sys.exit(main())
