"""Reference (plain NumPy) for the svd family. Not written yet."""

__all__: list[str] = []
