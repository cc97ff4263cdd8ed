"""``python -m eager_rt`` is the ``eager`` command."""

import sys

from eager_rt.cli import main

sys.exit(main())
