"""Tensor-Core SpMM (SMaT) and the CPU SpMM: issue 3. Not built yet: nothing is exported."""

__all__: list[str] = []
