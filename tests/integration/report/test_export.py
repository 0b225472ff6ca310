"""``settlechain export`` on real outputs: the plaintext reference's (every policy) and
a private three-process job's (with its Merkle commitment).

What was written is opened again (CSV with the csv module, Parquet with polars, XLSX
by reading its XML with zipfile and ElementTree, independent of the writer) and
compared with records.parquet, the quarantine file and the raw billing export read
with the csv module (not with ingest).  Inputs that do not belong together are
refused, and nothing is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import polars as pl
import pytest

import engine.export as export
from engine.cli import main
from engine.rules import load_rules
from tests.integration.engine.jobs import generate, run_job

NS = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
HOSTILE = {5: "=1+1", 6: "-5", 7: "+8613800000000", 8: "@SUM(A1)", 9: "a,b\"c"}
LISTS = ("disputes", "unmatched", "invalid")
STATUS_OF_LIST = {"disputes": "disputed", "unmatched": "unmatched", "invalid": "invalid"}


def _plant_hostile_ids(path: Path) -> None:
    """Give a few rows record ids that a spreadsheet would run as formulas."""
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        rows = list(csv.reader(handle))
    for row_number, record_id in HOSTILE.items():
        rows[row_number][0] = record_id
    with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("export-data")
    generated = generate(folder, records=4000, seed=17)
    _plant_hostile_ids(generated.data["A"])
    return generated


@pytest.fixture(scope="module", params=["differences", "flags", "aggregate"])
def plain(request: pytest.FixtureRequest, dataset: Any,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Reference outputs under one policy, and what export wrote from A's."""
    policy = request.param
    out = tmp_path_factory.mktemp(f"plain-{policy}")
    assert main(["reconcile-plain", "--a", str(dataset.data["A"]), "--b", str(dataset.data["B"]),
                 "--rules", str(dataset.rules), "--out", str(out / "outputs"),
                 "--disclosure", policy]) == 0
    rules_file = out / "rules.toml"  # the job's rules: the policy is part of them
    rules_file.write_text(dataset.rules.read_text(encoding="utf-8").replace(
        'policy = "flags"', f'policy = "{policy}"'), encoding="utf-8")
    assert load_rules(rules_file).disclosure == policy
    assert main(["export", "--from", str(out / "outputs" / "A"), "--data",
                 str(dataset.data["A"]), "--rules", str(rules_file), "--out",
                 str(out / "lists")]) == 0
    return {"policy": policy, "outputs": out / "outputs" / "A", "lists": out / "lists",
            "rules": rules_file, "data": dataset.data["A"]}


# ---------------------------------------------------------------------------
# reading back


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def read_xlsx(path: Path) -> tuple[list[list[Any]], str]:
    """The first sheet's cells (None for an empty cell) from its XML, and the XML."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert "xl/worksheets/sheet1.xml" in names and "xl/worksheets/sheet2.xml" not in names
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{NS['x']}}}t"))
                      for si in root.findall("x:si", NS)]
        xml = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
    rows = []
    for row in ElementTree.fromstring(xml).find("x:sheetData", NS).findall("x:row", NS):
        cells: dict[int, Any] = {}
        for cell in row.findall("x:c", NS):
            ref = cell.get("r")
            column = 0
            for ch in ref.rstrip("0123456789"):
                column = column * 26 + ord(ch) - 64
            kind = cell.get("t")
            if kind == "s":
                value: Any = shared[int(cell.find("x:v", NS).text)]
            elif kind == "inlineStr":
                value = "".join(t.text or "" for t in cell.iter(f"{{{NS['x']}}}t"))
            elif kind == "str":
                value = cell.find("x:v", NS).text
            else:
                value = int(float(cell.find("x:v", NS).text))
            cells[column - 1] = value
        width = max(cells) + 1 if cells else 0
        rows.append([cells.get(i) for i in range(width)])
    return rows, xml


def read_quarantine(folder: Path) -> list[dict[str, Any]]:
    """The quarantine file the reference wrote (CSV or Parquet), as dicts."""
    if (folder / "quarantine.parquet").exists():
        return pl.read_parquet(folder / "quarantine.parquet").to_dicts()
    return read_csv(folder / "quarantine.csv")


def raw_rows(path: Path) -> dict[int, dict[str, str]]:
    """The billing export, row number -> fields as text (the csv module, not ingest)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        return {i: row for i, row in enumerate(csv.DictReader(handle), start=1)}


# ---------------------------------------------------------------------------


def test_formats_hold_the_same_rows(plain: dict[str, Any]) -> None:
    for kind in LISTS:
        parquet = pl.read_parquet(plain["lists"] / f"{kind}.parquet")
        assert all(dtype in (pl.Int64, pl.String) for dtype in parquet.schema.values())
        rows_csv = read_csv(plain["lists"] / f"{kind}.csv")
        assert list(rows_csv[0]) == parquet.columns if rows_csv else True
        assert len(rows_csv) == parquet.height
        sheet, xml = read_xlsx(plain["lists"] / f"{kind}.xlsx")
        assert "<f>" not in xml and "<f " not in xml  # no formula anywhere
        assert sheet[0] == parquet.columns
        assert len(sheet) == parquet.height + 1
        for got_csv, got_sheet, want in zip(rows_csv, sheet[1:], parquet.iter_rows(named=True),
                                            strict=True):
            for name, value in want.items():
                text = "" if value is None else str(value)
                if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    text = "'" + text  # the CSV's only change (module docstring of lists)
                assert got_csv[name] == text, (kind, name)
            padded = got_sheet + [None] * (len(parquet.columns) - len(got_sheet))
            assert padded == list(want.values()), kind


def test_lists_equal_records_parquet_and_the_data_file(plain: dict[str, Any]) -> None:
    statuses = pl.read_parquet(plain["outputs"] / "records.parquet")
    by_row = {r["row"]: r for r in statuses.iter_rows(named=True)}
    raw = raw_rows(plain["data"])
    summary = json.loads((plain["outputs"] / "summary.json").read_text(encoding="utf-8"))
    policy = plain["policy"]
    tz = dt.timezone(dt.timedelta(hours=8))
    for kind in ("disputes", "unmatched"):
        listed = pl.read_parquet(plain["lists"] / f"{kind}.parquet").to_dicts()
        status = STATUS_OF_LIST[kind]
        # every row of that status is in the list, once (as a call's row or merged row)
        covered: list[int] = []
        for item in listed:
            rows = ([int(r) for r in item["merged_rows"].split(";")] if item["merged_rows"]
                    else [item["row"]])
            assert rows[0] == item["row"]
            covered += rows
        assert sorted(covered) == sorted(r for r, s in by_row.items() if s["status"] == status)
        # largest charge first, then by row
        assert [(-i["charge"], i["row"]) for i in listed] == sorted(
            (-i["charge"], i["row"]) for i in listed)
        for item in listed:
            first = by_row[item["row"]]
            assert item["record_id"] == first["record_id"]
            if kind == "disputes":
                assert item["pair_id"] == first["pair_id"] and item["pair_id"]
                assert item.get("reasons") == (first["reasons"] if policy != "aggregate"
                                               else None)
                for name in ("diff_start_s", "diff_duration_s", "diff_charge",
                             "diff_rated_charge"):
                    assert item.get(name) == (first[name] if policy == "differences" else None)
            else:
                assert "pair_id" not in item
            # the call's own values, from the raw file
            rows = [int(r) for r in item["merged_rows"].split(";")] if item["merged_rows"] \
                else [item["row"]]
            assert item["charge"] == sum(int(raw[r]["charge"]) for r in rows)
            assert item["duration_s"] == sum(int(raw[r]["duration_s"]) for r in rows)
            head = raw[rows[0]]
            assert item["calling"] == head["calling"].lstrip("+")
            assert item["service"] == head["service"]
            start = dt.datetime.fromisoformat(head["start_time"]).astimezone(tz)
            assert item["start"] == start.replace(microsecond=0).isoformat()
        if kind == "disputes":
            assert len(listed) == summary["pairs"]["disputed"]
    columns = pl.read_parquet(plain["lists"] / "disputes.parquet").columns
    assert ("reasons" in columns) == (policy != "aggregate")
    assert ("diff_charge" in columns) == (policy == "differences")
    # invalid rows: records.parquet's reason and the quarantine file's message
    invalid = pl.read_parquet(plain["lists"] / "invalid.parquet").to_dicts()
    quarantine = {int(r["row"]): r for r in read_quarantine(plain["outputs"])}
    assert [i["row"] for i in invalid] == sorted(r for r, s in by_row.items()
                                                 if s["status"] == "invalid")
    assert invalid, "the generated file has invalid rows"
    for item in invalid:
        assert item["reason"] == by_row[item["row"]]["reasons"]
        assert item["code"] == item["reason"].split(":")[0]
        assert item["message"] == quarantine[item["row"]]["message"]


def test_planted_ids_are_text_everywhere(plain: dict[str, Any]) -> None:
    found = {}
    for kind in LISTS:
        parquet = pl.read_parquet(plain["lists"] / f"{kind}.parquet")
        sheet, _ = read_xlsx(plain["lists"] / f"{kind}.xlsx")
        column = parquet.columns.index("record_id")
        for rid, cell, line in zip(parquet["record_id"], sheet[1:],
                                   read_csv(plain["lists"] / f"{kind}.csv"), strict=True):
            if rid in HOSTILE.values():
                found[rid] = (cell[column], line["record_id"])
    assert found, "a planted id is in some list"
    for rid, (cell, text) in found.items():
        assert cell == rid
        assert text == ("'" + rid if rid[0] in "=+-@" else rid)


def _export(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["export", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_wrong_rules_are_refused(plain: dict[str, Any], dataset: Any, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    other = "aggregate" if plain["policy"] != "aggregate" else "flags"
    rules = tmp_path / "rules.toml"
    rules.write_text(plain["rules"].read_text(encoding="utf-8").replace(
        f'policy = "{plain["policy"]}"', f'policy = "{other}"'), encoding="utf-8")
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(plain["data"]),
                          "--rules", str(rules), "--out", str(tmp_path / "lists")], capsys)
    assert code == 2 and "these are not the job's rules" in text and str(rules) in text
    assert not (tmp_path / "lists").exists()


def test_the_other_partys_data_is_refused(plain: dict[str, Any], dataset: Any, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(dataset.data["B"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path / "lists")],
                         capsys)
    assert code == 2 and "the data file is not the one this party's job read" in text
    assert re.search(r", row \d+, column '(row|record_id|status)'", text)
    assert str(dataset.data["B"]) in text
    assert not (tmp_path / "lists").exists()


def test_a_statement_of_another_job_is_refused(plain: dict[str, Any], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "outputs"
    folder.mkdir()
    for name in ("summary.json", "records.parquet", "quarantine.csv", "quarantine.parquet"):
        if (plain["outputs"] / name).exists():
            (folder / name).write_bytes((plain["outputs"] / name).read_bytes())
    statement = json.loads((plain["outputs"] / "statement.json").read_text(encoding="utf-8"))
    (folder / "statement.json").write_text(json.dumps({**statement, "job_id": "another"}),
                                           encoding="utf-8")
    code, text = _export(["--from", str(folder), "--data", str(plain["data"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path / "lists")],
                         capsys)
    assert code == 2 and "the statement is of another job" in text


def test_a_folder_without_outputs_is_refused(plain: dict[str, Any], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _export(["--from", str(tmp_path), "--data", str(plain["data"]), "--rules",
                          str(plain["rules"]), "--out", str(tmp_path / "lists")], capsys)
    assert code == 2 and "summary.json" in text and "file not found" in text


def test_formats_and_lists_can_be_chosen(plain: dict[str, Any], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(plain["data"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path),
                          "--format", "parquet", "--lists", "invalid"], capsys)
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["invalid.parquet"]
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(plain["data"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path),
                          "--format", "csv,pdf"], capsys)
    assert code == 2 and "unknown export format" in text and "pdf" in text


def test_too_many_rows_for_a_sheet_skip_the_workbook(plain: dict[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(export, "XLSX_MAX_ROWS", 3)
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(plain["data"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path)], capsys)
    assert code == 0
    assert "not written: xlsx:" in text and "do not fit one Excel sheet" in text
    assert (tmp_path / "unmatched.csv").exists() and not (tmp_path / "unmatched.xlsx").exists()


def test_xlsx_without_xlsxwriter(plain: dict[str, Any], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(export, "xlsx_available", lambda: False)
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(plain["data"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path / "a"),
                          "--format", "xlsx"], capsys)
    assert code == 2 and "pip install 'settlechain[xlsx]'" in text
    # by default the workbook is left out with a note, the rest is written
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(plain["data"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "note: no .xlsx" in text
    assert sorted(p.suffix for p in (tmp_path / "b").iterdir()) == [".csv"] * 3 + [".parquet"] * 3


# ---------------------------------------------------------------------------
# a private job: the commitment in statement.json binds the data file


@pytest.fixture(scope="module")
def private_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from engine.job.demo import warm_up_psi

    warm_up_psi()
    folder = tmp_path_factory.mktemp("export-job")
    generated = generate(folder / "data", records=3000, seed=23)
    job, codes = run_job(folder / "job", generated.data, generated.rules, job_id="export-1")
    assert codes == {"A": 0, "B": 0, "H": 0}, codes
    return {"outputs": folder / "job" / "A", "data": generated.data["A"],
            "job": job.job_path, "rules": generated.rules}


def test_private_job_export_checks_the_commitment(private_job: dict[str, Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _export(["--from", str(private_job["outputs"]), "--data",
                          str(private_job["data"]), "--job", str(private_job["job"]),
                          "--out", str(tmp_path / "lists")], capsys)
    assert code == 0, text
    assert "and the Merkle commitment in statement.json" in text
    statuses = pl.read_parquet(private_job["outputs"] / "records.parquet")
    disputes = pl.read_parquet(tmp_path / "lists" / "disputes.parquet")
    summary = json.loads((private_job["outputs"] / "summary.json").read_text(encoding="utf-8"))
    assert disputes.height == summary["pairs"]["disputed"]
    first = dict(statuses.select("row", "pair_id").iter_rows())
    assert all(first[r] == p for r, p in disputes.select("row", "pair_id").iter_rows())


def test_private_job_export_refuses_an_edited_charge(private_job: dict[str, Any],
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Same rows, ids and statuses, one charge changed: only the commitment tells."""
    edited = tmp_path / "a.csv"
    with private_job["data"].open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    charge = header.index("charge")
    target = next(i for i, r in enumerate(rows[1:], start=1) if r[charge].isdigit()
                  and int(r[charge]) > 0 and r[header.index("service")] == "sms")
    rows[target][charge] = str(int(rows[target][charge]) + 1)
    with edited.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    code, text = _export(["--from", str(private_job["outputs"]), "--data", str(edited),
                          "--job", str(private_job["job"]), "--out", str(tmp_path / "lists")],
                         capsys)
    assert code == 2, text
    assert "not the one this party's job committed to" in text
    assert not (tmp_path / "lists").exists()



def test_commitment_follows_the_summary(plain: dict[str, Any], tmp_path: Path) -> None:
    """With one bucket the root is recomputed (the key places nothing); with more, only
    from the bucket key the party's work folder keeps."""
    from engine.partition import Partition
    from engine.side import recompute_commitment, save_partition

    rules = load_rules(plain["rules"])
    one = recompute_commitment(plain["data"], rules, None, Partition(bytes(16), 1)).root.hex()
    assert export._commitment_root(plain["data"], rules, {"partition": {"buckets": 1}},
                                   tmp_path) == one
    summary = {"job_id": "j", "partition": {"buckets": 4}}
    assert export._commitment_root(plain["data"], rules, summary, tmp_path) is None
    four = Partition(bytes(range(16)), 4)
    save_partition(tmp_path / ".work" / "j", four)
    assert export._commitment_root(plain["data"], rules, summary, tmp_path) == \
        recompute_commitment(plain["data"], rules, None, four).root.hex()


def test_reference_outputs_say_the_commitment_was_not_checked(
        plain: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    statement = json.loads((plain["outputs"] / "statement.json").read_text(encoding="utf-8"))
    code, text = _export(["--from", str(plain["outputs"]), "--data", str(plain["data"]),
                          "--rules", str(plain["rules"]), "--out", str(tmp_path)], capsys)
    assert code == 0
    if statement["commitments"]["A"] is None:
        assert "the Merkle commitment was not checked" in text
    else:
        assert "and the Merkle commitment in statement.json" in text
