"""Reference (plain NumPy) for the gram family. Not written yet."""

__all__: list[str] = []
