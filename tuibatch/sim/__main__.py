"""``python -m tuibatch.sim``."""

import sys

from tuibatch.sim import main

sys.exit(main())
