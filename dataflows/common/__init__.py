"""Shared helpers for the weft demo Chronon config repository (not compiled themselves)."""
