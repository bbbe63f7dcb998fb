"""Exports (CSV and JSON Lines) stream with a proof; verify_audit --export proves them or names the row."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from portal.audit.export import verify_export
from portal.audit.models import AuditAction, AuditEvent, TargetType
from tests.audit.conftest import record, tamper

EXPORT = reverse("audit:export")


@pytest.fixture
def exporting(client, viewer):
    client.force_login(viewer)
    return client


def download(client, tmp_path, fmt: str, **filters) -> str:
    response = client.get(EXPORT, {"format": fmt, **filters})
    assert response.status_code == 200
    assert response.streaming
    assert response.headers["Content-Disposition"].endswith(f'.{fmt}"')
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(b"".join(response.streaming_content))
    return str(path)


def problems(path: str, **kwargs) -> list[str]:
    return verify_export(path, **kwargs).problems


def rows_of(path: str) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def write_rows(path: str, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_unfiltered_export_is_proven_untouched_and_complete(exporting, tmp_path, fmt):
    record(6, before={"nested": {"x": [1, 2.5, None, "é"]}}, message="line one\nline two")
    path = download(exporting, tmp_path, fmt)
    report = verify_export(path)
    assert report.ok, report.problems
    assert report.proof["contiguous"] is True
    # The export's own AUDIT_EXPORTED event is recorded first, so it is part of the export.
    assert report.rows == report.proof["head"]["seq"] == AuditEvent.objects.count()
    assert "proven untouched and complete" in report.summary()
    assert not problems(path, against_database=False)


def test_the_export_is_audited_with_its_filter(exporting, tmp_path):
    record(2)
    download(exporting, tmp_path, "csv", actor="system:command_line")
    event = AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).get()
    assert event.actor_label == "vic.viewer"
    assert event.after["filter"] == {"actor": "system:command_line"}
    assert event.after["format"] == "csv"


def test_csv_rows_hold_every_hashed_field_and_the_trailer(exporting, tmp_path):
    last = record(3)
    rows = rows_of(download(exporting, tmp_path, "csv", actor="system:command_line"))
    assert rows[0][:3] == ["seq", "occurred_at", "actor_id"] and rows[0][-1] == "hash"
    assert rows[-2][0] == str(last.seq) and rows[-2][-1] == last.hash
    assert rows[-1][0] == "#proof"
    proof = json.loads(rows[-1][1])
    assert proof["rows"] == 3 and proof["filter"] == {"actor": "system:command_line"}
    assert proof["contiguous"] is False


def test_jsonl_rows_are_objects_with_nested_json(exporting, tmp_path):
    record(2, after={"b": {"c": [1]}})
    lines = read_lines(download(exporting, tmp_path, "jsonl", actor="system:command_line"))
    first = json.loads(lines[0])
    assert first["after"] == {"b": {"c": [1]}}
    assert first["occurred_at"].endswith("Z")
    assert "audit_export_proof" in json.loads(lines[-1])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_filtered_export_is_proven_complete_for_its_filter(exporting, tmp_path, fmt):
    record(3, target_id="A")
    record(2, target_id="B")
    record(3, target_id="A")
    path = download(exporting, tmp_path, fmt, target_type="key", target_id="A")
    report = verify_export(path)
    assert report.ok, report.problems
    assert report.rows == 6


def test_a_changed_cell_is_named_by_row(exporting, tmp_path):
    record(5)
    path = download(exporting, tmp_path, "csv")
    rows = rows_of(path)
    rows[3][9] = "I changed the message"  # row 3 = seq 3 (row 1 follows the header)
    write_rows(path, rows)
    found = problems(path)
    assert found[0] == "row 3 (seq 3): content changed (its hash does not match its fields)"


def test_a_changed_json_value_is_named_by_row_in_jsonl(exporting, tmp_path):
    record(4)
    path = download(exporting, tmp_path, "jsonl")
    lines = read_lines(path)
    data = json.loads(lines[1])
    data["after"]["label"] = "forged"
    lines[1] = json.dumps(data)
    write_lines(path, lines)
    assert problems(path, against_database=False)[0].startswith("row 2 (seq 2): content changed")


def test_a_removed_row_is_named(exporting, tmp_path):
    record(5)
    path = download(exporting, tmp_path, "csv")
    rows = rows_of(path)
    del rows[3]
    write_rows(path, rows)
    found = problems(path, against_database=False)
    assert found[0] == "row 3 (seq 4): gap before it, seq 3..3 missing (rows removed)"
    assert any("rows removed, added or reordered" in p for p in found)


def test_a_removed_row_of_a_filtered_export_is_caught_by_digest_and_database(exporting, tmp_path):
    record(4, target_id="A")
    path = download(exporting, tmp_path, "csv", target_id="A")
    rows = rows_of(path)
    removed = rows.pop(2)[0]
    write_rows(path, rows)
    offline = problems(path, against_database=False)
    assert any("rows removed, added or reordered" in p for p in offline)
    online = problems(path)
    assert f"seq {removed} matches the filter in the database but is missing" in online[0]


def test_reordered_rows_are_named(exporting, tmp_path):
    record(5)
    path = download(exporting, tmp_path, "jsonl")
    lines = read_lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(path, lines)
    found = problems(path, against_database=False)
    assert found[0].startswith("row 2 (seq 3)")
    assert "row 3 (seq 2): out of order (comes after seq 3)" in found


def test_an_edited_proof_trailer_is_caught(exporting, tmp_path):
    record(3)
    path = download(exporting, tmp_path, "jsonl", actor="system:command_line")
    lines = read_lines(path)
    proof = json.loads(lines[-1])
    proof["audit_export_proof"]["rows"] = 2
    lines[-1] = json.dumps(proof)
    del lines[0]
    write_lines(path, lines)
    assert "the proof trailer was altered" in problems(path, against_database=False)[0]


def test_a_cut_short_export_is_caught(exporting, tmp_path):
    record(3)
    path = download(exporting, tmp_path, "csv")
    rows = rows_of(path)[:-1]
    write_rows(path, rows)
    assert problems(path) == ["no proof trailer at the end of the file (export cut short?)"]


def test_an_export_of_a_chain_rewritten_since_is_caught_against_the_database(exporting, tmp_path):
    record(3)
    path = download(exporting, tmp_path, "csv")
    tamper("UPDATE audit_auditevent SET message = 'rewritten' WHERE seq = 2")
    assert any("live chain: event #2: content changed" in p for p in problems(path))
    assert not problems(path, against_database=False)


def test_a_bad_format_or_filter_is_422(exporting, db):
    assert exporting.get(EXPORT, {"format": "xml"}).status_code == 422
    assert exporting.get(EXPORT, {"since": "soon"}).status_code == 422


def test_export_audit_command_writes_a_verifiable_file(db, tmp_path):
    record(4, target_id="A")
    record(2, target_id="B")
    path = tmp_path / "trail.jsonl"
    out, err = io.StringIO(), io.StringIO()
    call_command("export_audit", "-o", str(path), "--target-id", "A", stdout=out, stderr=err)
    assert "Exported 4 events" in out.getvalue()
    assert "export_audit: done 4 events" in err.getvalue()
    out = io.StringIO()
    call_command("verify_audit", "--export", str(path), "--no-progress", stdout=out)
    assert out.getvalue().startswith("OK: 4 rows")
    exported = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert exported.actor_label == "system:export_audit"
    assert exported.target_type == TargetType.AUDIT


def test_verify_audit_export_exits_non_zero_naming_the_row(db, tmp_path):
    record(3)
    path = tmp_path / "trail.csv"
    call_command("export_audit", "-o", str(path), "--no-progress", stdout=io.StringIO())
    rows = rows_of(str(path))
    rows[2][3] = "mallory"
    write_rows(str(path), rows)
    with pytest.raises(CommandError) as caught:
        call_command(
            "verify_audit",
            "--export",
            str(path),
            "--no-progress",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert caught.value.returncode == 1
    assert "row 2 (seq 2): content changed" in str(caught.value)


def test_export_audit_refuses_bad_filters(db, tmp_path):
    with pytest.raises(CommandError, match="--since"):
        call_command("export_audit", "-o", str(tmp_path / "x.csv"), "--since", "whenever")


def test_an_external_anchor_checks_the_export(db, tmp_path):
    last = record(3)
    path = tmp_path / "trail.csv"
    call_command("export_audit", "-o", str(path), "--no-progress", stdout=io.StringIO())
    assert not problems(str(path), expect_head=(3, last.hash), against_database=False)
    wrong = problems(str(path), expect_head=(3, "0" * 64), against_database=False)
    assert "row 3 (seq 3): differs from the external anchor 3" in wrong
