"""Synthetic paired billing exports with the true answer.  Depends on nothing else of ours.

``settlechain gen --records N --seed S --out DIR [--format csv|parquet]`` (or
:func:`data_gen.dataset.generate` + :func:`data_gen.dataset.write_dataset`) writes
one settlement month between two operators: ``a.<fmt>`` and ``b.<fmt>`` (each
operator's billing export in the canonical schema of docs/records.md),
``rules.toml`` (the rules both priced with, docs/rules.md), ``truth.parquet``
(the status every row of both files must get from a reconciler under those rules,
with its counterpart, reasons and the perturbations behind it) and
``manifest.json`` (knobs, counts, versions).

Modules, in the order they import each other:

- ``errors``     the package's root exception, :class:`DataGenError`
- ``config``     :class:`GenConfig`: every knob, its default and its documentation
- ``blocks``     block-wise work and per-(purpose, block) random streams
- ``numbers``    Chinese mobile numbers in E.164 by operator and number range
- ``tariff``     the scenario's rules: built from the knobs, written as TOML, rated with
- ``events``     the true call events of the month
- ``views``      each operator's perturbed view, row by row; canonical records; isolation
- ``truth``      the expected outcome of every pair and every row
- ``record_ids`` each operator's record ids, as a function of the row
- ``dataset``    ``generate`` (data *and* true answer) and the streaming writers
- ``cli``        the ``gen`` subcommand

Everything is vectorised numpy, block by block (2^20 events), deterministic for a
seed; polars writes the files, streaming.
"""
