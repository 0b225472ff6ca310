"""Data in: synthetic exports with the true answer, the rules, validating an export, and the
plaintext reference reconciliation.

- :func:`generate_data` calls :func:`data_gen.dataset.generate` and
  :func:`data_gen.dataset.write_dataset` (``settlechain gen``);
- :func:`load_rules` is :func:`engine.rules.load_rules` (docs/rules.md);
- :func:`validate` calls :func:`engine.ingest.ingest` (``settlechain validate``);
- :func:`reconcile_plain` calls :func:`engine.reference.reconcile_files`
  (``settlechain reconcile-plain``): both exports in one process, NO PRIVACY.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from engine.ingest import IngestResult
    from engine.rules import Rules

    from settlechain.outputs import OperatorOutputs

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class GeneratedData:
    """What :func:`generate_data` wrote into ``folder``."""

    folder: Path
    a: Path
    """Operator A's billing export (``a.csv`` or ``a.parquet``)."""
    b: Path
    """Operator B's billing export."""
    rules: Path
    """``rules.toml``: the rules both operators priced with."""
    truth: Path
    """``truth.parquet``: the status every row of both files must get."""
    manifest: Mapping[str, Any]
    """``manifest.json``: knobs, seed, counts of the true answer, versions."""

    @property
    def period(self) -> str:
        """The settlement month the calls fall in (``YYYY-MM``)."""
        return str(self.manifest["knobs"]["period"])

    @property
    def data(self) -> dict[str, Path]:
        """``{"A": a, "B": b}``: what :func:`settlechain.run_local_job` takes."""
        return {"A": self.a, "B": self.b}


def generate_data(out: PathLike, *, records: int, seed: int,
                  file_format: Literal["csv", "parquet"] = "csv",
                  progress: Callable[[int, int], None] | None = None,
                  **knobs: Any) -> GeneratedData:
    """Generate one settlement month between two operators and write it into ``out``.

    ``records``: true call events (each file has about as many rows); ``seed``: the same
    seed and knobs give identical files.  ``knobs``: any other field of
    :class:`data_gen.config.GenConfig` (``settlechain gen --help`` lists them with their
    defaults), e.g. ``period="2026-11"`` or ``missing_share_b=0.05``.
    ``progress(events_done, events)``: after each block of events written.  Raises
    :class:`~data_gen.errors.DataGenError` naming a bad knob.
    """
    from data_gen.config import GenConfig
    from data_gen.dataset import generate, write_dataset
    from data_gen.errors import DataGenError

    known = {f.name for f in dataclasses.fields(GenConfig)}
    unknown = sorted(set(knobs) - known)
    if unknown:
        raise DataGenError(f"unknown knob {unknown[0]!r}: expected one of "
                           f"{', '.join(sorted(known - {'records', 'seed'}))}")
    dataset = generate(GenConfig(records=records, seed=seed, **knobs), file_format)
    folder = Path(out)
    written = write_dataset(dataset, folder, on_block=progress)
    return GeneratedData(folder=folder, a=folder / f"a.{file_format}",
                         b=folder / f"b.{file_format}", rules=folder / "rules.toml",
                         truth=folder / "truth.parquet", manifest=written.manifest)


def load_rules(rules: Rules | PathLike) -> Rules:
    """The rules TOML at ``rules`` parsed and validated (docs/rules.md), or ``rules`` itself
    when it is already a :class:`~engine.rules.Rules`.  ``rules.sm3_hash()`` is the hash a
    job file carries.  Raises :class:`~engine.errors.RulesError` naming the key."""
    from engine.rules import Rules, load_rules as load

    return rules if isinstance(rules, Rules) else load(Path(rules))


def validate(data: PathLike, rules: Rules | PathLike, *, quarantine: PathLike | None = None,
             period: str | None = None) -> IngestResult:
    """Validate, normalise and rate one billing export, as a party's ingest stage does
    (:func:`engine.ingest.ingest`).

    Bad rows never raise: they are ``invalid`` with a reason (``result.invalid_by_reason``)
    and an entry in ``result.quarantine`` (written to ``quarantine`` when given: CSV, or
    Parquet for ``.parquet``).  ``period`` (``YYYY-MM``): records starting outside it are
    ``excluded`` as ``out_of_period``, as in a job for that period.  Raises
    :class:`~engine.errors.InputError` when the file cannot be read as a whole.
    """
    from engine.ingest import ingest
    from engine.period import period_window

    loaded = load_rules(rules)
    window = None if period is None else period_window(period, loaded.timezone_offset_s)
    return ingest(Path(data), loaded, period=window,
                  quarantine_path=None if quarantine is None else Path(quarantine))


@dataclass(frozen=True)
class PlainResult:
    """The plaintext reference's outputs: ``out/A`` and ``out/B``."""

    job_id: str
    a: OperatorOutputs
    b: OperatorOutputs


def reconcile_plain(a: PathLike, b: PathLike, rules: Rules | PathLike, *, out: PathLike,
                    job_id: str | None = None, period: str | None = None,
                    operators: tuple[str, str] = ("A", "B"),
                    progress: Callable[[str, int, int], None] | None = None) -> PlainResult:
    """Reconcile A's and B's exports IN THE CLEAR, in this process, and write each party's
    outputs (summary.json, records.parquet, statement.json, quarantine.parquet) to
    ``out/A`` and ``out/B``, as a private job would except the pair ids, the anchor and
    the timings (:func:`engine.reference.reconcile_files`).  NO PRIVACY: for testing
    and debugging, never on two operators' real data outside one operator's premises.

    ``job_id``: default ``plain-`` + a hash of the rules and both files (a rerun gives
    the same pair ids).  ``period``: as :func:`validate`.  ``operators``: the member ids
    written into the outputs.  ``progress(what, done, total)``: reading each file, then
    buckets.  Raises :class:`~engine.errors.JobError` when the circuit breaker refuses.
    """
    from engine.reference import reconcile_files
    from engine.reference_cli import default_job_id

    from settlechain.outputs import read_operator_outputs

    loaded = load_rules(rules)
    job_id = job_id or default_job_id(loaded.sm3_hash(), (Path(a), Path(b)))
    folder = Path(out)
    reconcile_files(Path(a), Path(b), loaded, out=folder, job_id=job_id, period=period,
                    operators=operators, progress=progress)
    return PlainResult(job_id=job_id, a=read_operator_outputs(folder / "A"),
                       b=read_operator_outputs(folder / "B"))


__all__ = ["GeneratedData", "PlainResult", "generate_data", "load_rules", "reconcile_plain",
           "validate"]
