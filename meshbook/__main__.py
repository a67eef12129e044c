"""`python -m meshbook` is the `meshbook` command."""

import sys

from meshbook.cli import main

sys.exit(main())
