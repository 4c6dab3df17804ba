"""Reference (plain NumPy) for the lut family. Not written yet."""

__all__: list[str] = []
