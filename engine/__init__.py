"""settlechain engine: composes ingest, the private protocols and the ledger into jobs.

Modules (in topological order of their imports):

- ``errors``      the package's root exception with ``diagnostics()``
- ``rules``       rules TOML -> frozen dataclasses, validated once, SM3-hashed
- ``cli``         the ``settlechain`` console script (subcommands registered per area)
"""
