"""`python -m fleetnode …` — see `fleetnode.cli`."""

import os
import sys

from fleetnode.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
if "pyasic_rs" in sys.modules:
    # as in `python -m miners`: pyasic-rs may abort the interpreter while finalising, after
    # everything is flushed; keep the exit status instead.
    os._exit(code)
sys.exit(code)
