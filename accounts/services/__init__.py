"""Writes. Every function is keyword-only, transactional and records an activity event."""
