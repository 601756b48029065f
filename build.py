#!/usr/bin/env python3
"""boothkey command-line entry point: see `python build.py --help`."""

import sys

from builder.cli import main

if __name__ == "__main__":
    sys.exit(main())
