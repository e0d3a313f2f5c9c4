"""The durable reprint queue: print jobs on disk until a printer has accepted them.

One directory per printer. A job is `NNNNNNNNNN.<id>.bin` (ESC/POS bytes) with a `.txt` text
preview beside it, written to a temporary name, fsynced, then renamed — so after a power cut a
job is either whole or absent. Jobs print oldest first and are deleted only after the printer
took them. Limits: `jobs_max`, `bytes_max`, `job_bytes_max`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import SpoolError

jobs_max = 200
bytes_max = 16 * 1024 * 1024
job_bytes_max = 1024 * 1024
_JOB = re.compile(r"^(\d{10})\.([A-Za-z0-9_-]{1,40})\.bin$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Job:
    seq: int
    job_id: str
    path: Path

    @property
    def text_path(self) -> Path:
        return self.path.with_suffix(".txt")


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Spool:
    def __init__(
        self, directory: str | Path, jobs_max: int = jobs_max, bytes_max: int = bytes_max
    ) -> None:
        self.directory = Path(directory)
        self.jobs_max, self.bytes_max = jobs_max, bytes_max
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # A temporary file left by a power cut is a job put() never confirmed: drop it.
            for stale in self.directory.glob(".tmp-*"):
                stale.unlink()
        except OSError as exc:
            raise SpoolError(f"reprint queue {self.directory}: {exc.strerror}") from None

    def jobs(self) -> list[Job]:
        """Queued jobs, oldest first."""
        found = []
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            raise SpoolError(f"reprint queue {self.directory}: {exc.strerror}") from None
        for name in names:
            match = _JOB.match(name)
            if match:
                found.append(Job(int(match[1]), match[2], self.directory / name))
        return sorted(found, key=lambda job: job.seq)

    def queued_bytes(self) -> int:
        return sum(job.path.stat().st_size for job in self.jobs())

    def put(self, job_id: str, data: bytes, text: str = "") -> Job:
        """Store a job durably; refuses (SpoolError) when over a limit, storing nothing."""
        if not data:
            raise SpoolError("refusing an empty print job")
        if len(data) > job_bytes_max:
            raise SpoolError(f"print job {job_id} is larger than {job_bytes_max} bytes")
        jobs = self.jobs()
        if len(jobs) >= self.jobs_max:
            raise SpoolError(f"reprint queue {self.directory} holds {self.jobs_max} jobs already"
                             " - the printer has not printed for a while, check it")
        if self.queued_bytes() + len(data) > self.bytes_max:
            raise SpoolError(f"reprint queue {self.directory} would exceed {self.bytes_max} bytes"
                             " - the printer has not printed for a while, check it")
        seq = jobs[-1].seq + 1 if jobs else 1
        safe_id = _UNSAFE.sub("_", job_id)[:40] or "job"
        job = Job(seq, safe_id, self.directory / f"{seq:010d}.{safe_id}.bin")
        try:
            _write_durably(job.text_path, text.encode())  # before the .bin makes the job visible
            _write_durably(job.path, data)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the renames themselves must survive a power cut
            finally:
                os.close(dir_fd)
        except OSError as exc:
            reason = f"reprint queue {self.directory}: cannot write: {exc.strerror}"
            raise SpoolError(reason) from None
        return job

    def read(self, job: Job) -> tuple[bytes, str]:
        data = job.path.read_bytes()
        try:
            text = job.text_path.read_text()
        except (OSError, UnicodeDecodeError):
            text = ""  # the preview is a convenience; the bytes are the job
        return data, text

    def remove(self, job: Job) -> None:
        job.path.unlink()
        job.text_path.unlink(missing_ok=True)
