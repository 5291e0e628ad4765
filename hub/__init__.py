"""gigwire's realtime core and its web process."""
