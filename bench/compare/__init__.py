"""Side-by-side benchmark of gigwire against python-socketio (see run.py)."""
