"""The batch report: one result per job, rewritten after every job; --resume skips what succeeded."""

from __future__ import annotations

import json

import pytest

from engine.batch_report import FAILED, OK, BatchReport, JobResult, ReportError, job_key, succeeded_before

pytestmark = pytest.mark.timeout(30)


def test_report_is_written_after_each_job_and_resume_keeps_only_intact_successes(tmp_path):
    take = tmp_path / "a.npz"
    take.write_bytes(b"x")
    gone = tmp_path / "gone.npz"
    report = BatchReport(tmp_path / "report.json", tmp_path / "jobs.json")
    report.add(JobResult(1, job_key({"audio": "a.wav"}), "a.wav", OK, outputs=[str(take)]))
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert [job["status"] for job in on_disk["jobs"]] == [OK]
    report.add(JobResult(2, job_key({"audio": "b.wav"}), "b.wav", FAILED, error="disk full"))
    report.add(JobResult(3, job_key({"audio": "c.wav"}), "c.wav", OK, outputs=[str(gone)]))
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["counts"] == {"ok": 2, "skipped": 0, "failed": 1, "invalid": 0}
    assert data["jobs"][1]["error"] == "disk full" and report.summary_line() == "2 of 3 jobs succeeded"
    done = succeeded_before(tmp_path / "report.json")
    assert set(done) == {job_key({"audio": "a.wav"})}  # c.wav's take was deleted: it runs again
    assert job_key({"audio": "a.wav", "emotion": "happy"}) not in done  # an edited job runs again
    assert succeeded_before(tmp_path / "missing.json") == {}


def test_a_foreign_or_damaged_report_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(ReportError, match="delete it"):
        succeeded_before(path)
    path.write_text(json.dumps({"jobs": []}))
    with pytest.raises(ReportError, match="not a DualFace batch report"):
        succeeded_before(path)


def test_an_unwritable_report_path_is_refused_before_any_job(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        BatchReport(tmp_path / "missing" / "report.json")
    with pytest.raises(ReportError, match="existing folder"):
        BatchReport(tmp_path)
