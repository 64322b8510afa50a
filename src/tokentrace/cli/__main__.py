"""``python -m tokentrace.cli``: the same as the ``tokentrace`` command."""

from . import main

main()
