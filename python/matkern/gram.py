"""Gram-iteration spectral norm bounds: issue 7. Not built yet: nothing is exported."""

__all__: list[str] = []
