"""``python -m lood.resources``: see :mod:`lood.resources.cli`."""

from lood.resources.cli import main

main()
