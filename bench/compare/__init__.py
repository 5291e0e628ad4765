"""Side-by-side benchmark of gigwire against python-socketio (see run.py).

GIGWIRE_TREE names another gigwire checkout to measure with these scripts (run them with that
checkout's .venv/bin/python): its directory goes first on sys.path, so `hub` and `tests` are its."""

import os
import sys

if os.environ.get("GIGWIRE_TREE"):
    sys.path.insert(0, os.path.abspath(os.environ["GIGWIRE_TREE"]))
