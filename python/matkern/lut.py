"""LUT-quantized matmul (FLUTE): issue 5. Not built yet: nothing is exported."""

__all__: list[str] = []
