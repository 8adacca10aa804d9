#!/usr/bin/env python3
"""Real-time multi-person pose estimation on live and recorded video; see ``--help``."""

from streampose.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
