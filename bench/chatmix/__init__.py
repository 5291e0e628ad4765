"""Two-party chat benchmark: gigwire against a python-socketio + asyncpg peer (bench/chatmix/run.py)."""
