"""``python -m batchscore.endpoints RUN_ID``: the detached runner of an invocation."""

import sys

from .invocation import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
