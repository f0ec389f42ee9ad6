"""``python -m mbmssec`` runs the command line."""

import sys

from mbmssec.cli import main

sys.exit(main())
