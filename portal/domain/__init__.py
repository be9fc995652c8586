"""The rules of the guides: plain async functions on Piccolo tables.

Nothing here imports Litestar or arq; the clock is always a parameter.
"""
