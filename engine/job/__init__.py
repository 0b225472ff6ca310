"""A private reconciliation job: the consortium, the job file, the parties' session and runner.

Modules (in topological order of their imports):

- ``consortium``  the consortium TOML (members, endpoints, keys) as frozen dataclasses
- ``keys``        ``settlechain keys init``: a local CA, TLS certificates and SM2 keys
- ``jobfile``     the job TOML (id, period, parties, rules hash, timeouts)
- ``tls``         gRPC credentials and peer identity from the consortium's certificates
- ``session``     the coordination service A hosts: join/agree, step exchange, abort, watch
- ``commitment``  the SM3 Merkle commitment to a party's canonical records
- ``party``       one party's run of a job, stage by stage
- ``demo``        ``settlechain demo``: a whole local consortium and job in one command
- ``cli``         the ``demo``, ``party`` and ``keys`` subcommands
"""
