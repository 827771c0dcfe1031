"""Allow `python -m potforge.cli`."""

import sys

from potforge.cli import main

sys.exit(main())
