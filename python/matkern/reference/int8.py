"""Reference (plain NumPy) for the int8 family. Not written yet."""

__all__: list[str] = []
