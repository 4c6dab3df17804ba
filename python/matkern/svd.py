"""Truncated SVD updating: issue 8. Not built yet: nothing is exported."""

__all__: list[str] = []
