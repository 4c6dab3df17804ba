"""Reference (plain NumPy) for the randproj family. Not written yet."""

__all__: list[str] = []
