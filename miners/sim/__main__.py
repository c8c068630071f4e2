"""Entry point for `python -m miners.sim` (see miners/sim/cli.py)."""

import sys

from miners.sim.cli import main

sys.exit(main())
