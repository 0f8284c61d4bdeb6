"""``python -m leaktrace``: the same as the ``leaktrace`` command."""

from .cli import main

main()
