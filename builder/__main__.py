"""`python -m recombinet_builder ...` = the `recombinet` command."""

import sys

from .cli import main

sys.exit(main())
