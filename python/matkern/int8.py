"""LLM.int8() matmul: issue 4. Not built yet: nothing is exported."""

__all__: list[str] = []
