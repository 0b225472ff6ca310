"""Helpers for real three-process jobs on loopback: generated data, a fresh consortium."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from engine.job.jobfile import Timeouts
from engine.job.local import LocalJob

JOB_TIMEOUT_S = 240


@dataclasses.dataclass
class Generated:
    folder: Path
    data: dict[str, Path]
    rules: Path
    truth: pl.DataFrame


def generate(folder: Path, *, records: int, seed: int, file_format: str = "csv",
             **knobs) -> Generated:
    from data_gen.config import GenConfig
    from data_gen.dataset import generate as make, write_dataset

    dataset = make(GenConfig(records=records, seed=seed, operator_a="CMCC", operator_b="CUCC",
                             **knobs), file_format)
    write_dataset(dataset, folder)
    return Generated(folder=folder, data={"A": folder / f"a.{file_format}",
                                          "B": folder / f"b.{file_format}"},
                     rules=folder / "rules.toml", truth=pl.read_parquet(folder / "truth.parquet"))


def run_job(folder: Path, data: dict[str, Path], rules: Path, *, job_id: str = "job-1",
            env: dict | None = None, timeouts: Timeouts | None = None, config: Path | None = None,
            adopt: bool = True, psi_protocol: str | None = None) -> tuple[LocalJob, dict[str, int]]:
    job = LocalJob.prepare(folder, data, rules, job_id=job_id, config=config, adopt=adopt,
                           psi_protocol=psi_protocol,
                           timeouts=timeouts or Timeouts(connect_s=60, stage_s=120,
                                                         peer_silence_s=6))
    job.start(env)
    codes = job.wait(JOB_TIMEOUT_S)
    return job, codes


def describe(job: LocalJob) -> str:
    return "\n".join(f"--- {role} ---\n{party.console_text()[-3000:]}"
                     for role, party in job.parties.items())
