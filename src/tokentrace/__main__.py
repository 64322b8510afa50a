"""``python -m tokentrace``: the same commands as the ``tokentrace`` script."""

from .cli import main

main()
