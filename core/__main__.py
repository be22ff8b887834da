"""``python -m agentracer``: the ``agentracer`` command."""

from .cli import main

main()
