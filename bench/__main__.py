"""``python -m bench [--quick] ...``: run the benchmark (see ``bench.runner``)."""

import sys

from bench.runner import main

sys.exit(main())
