"""Reference (plain NumPy) for the spmm family. Not written yet."""

__all__: list[str] = []
