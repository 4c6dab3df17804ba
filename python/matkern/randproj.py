"""Very sparse random projection and FastRP: issue 6. Not built yet: nothing is exported."""

__all__: list[str] = []
