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
- ``blocks``     chunks (per-(purpose, chunk) random streams) and blocks (memory)
- ``numbers``    Chinese mobile numbers in E.164 by operator and number range
- ``tariff``     the scenario's rules: built from the knobs, written as TOML, rated with
- ``events``     the true call events of the month (and a few outside it), block by block
- ``isolation``  renumbers repeat calls that come too close to their source's numbers
- ``views``      each operator's perturbed view, row by row; canonical records; invalid
                 rows, exclusions and duplicate copies across blocks
- ``record_ids`` each operator's record ids, as a function of the row
- ``truth``      the expected outcome of every pair and every row
- ``dataset``    ``generate`` (data *and* true answer) and the block-by-block writers
- ``cli``        the ``gen`` subcommand

Everything is vectorised numpy, block by block (2^18 events by default), so that peak
memory is bounded by the block (under 1 GiB), not by the scenario: 10^8 events per
side are made on a 24 GiB machine.  Random draws come per chunk of 2^16 events, so the
output is deterministic for a seed and the same, byte for byte, whatever the block
size.  polars builds each chunk's frames; pyarrow appends them to the Parquet files in
row groups of a fixed size (CSV files are appended to directly).
"""
