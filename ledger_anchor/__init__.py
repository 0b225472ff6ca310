"""Append-only SM3 Merkle transparency log with SM2-signed entries and cosigned checkpoints.

Depends on nothing else of settlechain's: it takes bytes and returns proofs, and
could be lifted out as its own library.
"""
