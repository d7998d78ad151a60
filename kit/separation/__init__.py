"""Vocal separation before the front-end: backends behind one interface, a cached stems store."""
