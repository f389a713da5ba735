"""Placeholder: the SeaweedFS fixture is being written (storage helper)."""
