"""`python -m miners …` — see `miners.cli`."""

import os
import sys

from miners.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
if "pyasic_rs" in sys.modules:
    # pyasic-rs has been seen to abort the interpreter during finalisation (exit 134);
    # everything is flushed, so skip finalisation rather than lose the exit status.
    os._exit(code)
sys.exit(code)
