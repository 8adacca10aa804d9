"""``python -m streampose`` = the ``streampose`` command."""

from .cli import main

raise SystemExit(main())
