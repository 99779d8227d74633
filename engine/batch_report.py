"""A machine-readable record of a batch run, and what `--resume` needs from it.

Both batch commands (`python -m engine animate --batch` and Blender's `-c dualface animate --batch`)
write one JSON report, rewritten atomically after every job so a crash or Ctrl-C keeps what was
done. Each job is identified by a hash of its entry in the batch file; `--resume` skips the jobs
whose identical entry succeeded last time and whose outputs still exist, and runs the rest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic_file import OutputPathError, check_output_path, write_text_atomic

REPORT_FORMAT = "dualface-batch-report-1"
OK, FAILED, INVALID, SKIPPED = "ok", "failed", "invalid", "skipped"  # job statuses


class ReportError(ValueError):
    """The report to resume from cannot be used; the message says what to do."""


def job_key(entry: Any) -> str:
    """A stable identity of a batch entry (the job as written, defaults merged in)."""
    text = json.dumps(entry, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class JobResult:
    index: int  # 1-based position in the batch file
    key: str  # job_key of its entry
    label: str  # what a person recognises: the audio file, or "job N"
    status: str  # ok, failed, invalid or skipped (succeeded in the run being resumed)
    error: str | None = None
    outputs: list[str] = field(default_factory=list)  # files written (takes, captions, renders, .blend)
    notes: list[str] = field(default_factory=list)  # e.g. where a fallback .blend went
    seconds: float = 0.0


class BatchReport:
    """Collects JobResults and keeps the report file (if any) up to date after each one."""

    def __init__(self, path: str | Path | None, batch: str | Path | None = None) -> None:
        """Refuses (ReportError) a report path that can never be written, before any job runs."""
        try:
            self.path = check_output_path(path, "batch report") if path is not None else None
        except OutputPathError as error:
            raise ReportError(str(error)) from None
        self.batch = str(batch) if batch is not None else None
        self.started = time.time()
        self.jobs: list[JobResult] = []

    def add(self, result: JobResult) -> JobResult:
        self.jobs.append(result)
        self.write()
        return result

    @property
    def failed(self) -> list[JobResult]:
        return [job for job in self.jobs if job.status in (FAILED, INVALID)]

    def as_dict(self) -> dict[str, Any]:
        counts = {
            status: sum(job.status == status for job in self.jobs)
            for status in (OK, SKIPPED, FAILED, INVALID)
        }
        return {
            "format": REPORT_FORMAT,
            "batch": self.batch,
            "started": self.started,
            "finished": time.time(),
            "counts": counts,
            "jobs": [asdict(job) for job in self.jobs],
        }

    def write(self) -> None:
        if self.path is not None:
            write_text_atomic(self.path, json.dumps(self.as_dict(), indent=1) + "\n", "batch report")

    def summary_line(self) -> str:
        done = sum(job.status in (OK, SKIPPED) for job in self.jobs)
        skipped = sum(job.status == SKIPPED for job in self.jobs)
        line = f"{done} of {len(self.jobs)} jobs succeeded"
        return line + (f" ({skipped} already done in the resumed run)" if skipped else "")


def succeeded_before(path: str | Path) -> dict[str, JobResult]:
    """job_key -> result of the jobs that succeeded in the report at ``path`` and whose outputs are
    all still there (a deleted output means the job runs again). A missing report resumes nothing."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"cannot resume from {path}: {error}; delete it to run every job") from None
    if (
        not isinstance(data, Mapping)
        or data.get("format") != REPORT_FORMAT
        or not isinstance(data.get("jobs"), list)
    ):
        raise ReportError(f"{path} is not a DualFace batch report; give --report another path")
    done: dict[str, JobResult] = {}
    for item in data["jobs"]:
        try:
            job = JobResult(**item)
        except TypeError:
            raise ReportError(
                f"{path} has a damaged job entry {item!r}; delete it to run every job"
            ) from None
        if job.status in (OK, SKIPPED) and all(Path(p).exists() for p in job.outputs):
            done[job.key] = job
    return done
