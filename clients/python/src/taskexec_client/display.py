"""What the command line shows: tables, JSON, and the live progress of a running job."""

import json
from typing import Any, TextIO

from taskexec_client.models import TERMINAL_STATUSES, Job, JobEvent, LogLine, TaskInfo

BAR_WIDTH = 24


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def job_json(job: Job) -> dict[str, Any]:
    return dict(job.raw)


def task_line(task: TaskInfo) -> str:
    summary = (task.docstring or "").strip().splitlines()
    tags = ",".join(task.tags)
    return f"{task.name:<24} {task.signature:<40} [{tags}] {summary[0] if summary else ''}".rstrip()


def task_text(task: TaskInfo) -> str:
    lines = [f"{task.name}{task.signature}", f"tags: {', '.join(task.tags) or '-'}"]
    if task.docstring:
        lines += ["", task.docstring.strip(), ""]
    lines.append("parameters:")
    for p in task.parameters:
        default = "required" if p.required else f"default {p.default}"
        lines.append(f"  {p.name}: {p.annotation or 'Any'} ({default})")
    if not task.parameters:
        lines.append("  (none)")
    return "\n".join(lines)


def job_line(job: Job) -> str:
    created = job.created_at.isoformat(timespec="seconds") if job.created_at else "-"
    progress = f"{job.progress:.0%}" if job.progress is not None else ""
    return f"{job.id}  {job.task_name:<20} {job.status:<10} {created}  {progress}".rstrip()


def job_text(job: Job) -> str:
    lines = [
        f"id:        {job.id}",
        f"task:      {job.task_name}",
        f"status:    {job.status}",
        f"params:    {json.dumps(job.params, sort_keys=True)}",
        f"attempts:  {job.attempts}",
        f"created:   {job.created_at.isoformat() if job.created_at else '-'}",
        f"started:   {job.started_at.isoformat() if job.started_at else '-'}",
        f"finished:  {job.finished_at.isoformat() if job.finished_at else '-'}",
    ]
    if job.progress is not None:
        lines.append(f"progress:  {job.progress:.0%} {job.progress_message or ''}".rstrip())
    if job.error is not None:
        lines.append(f"error:     {job.error.type}: {job.error.message}")
    if job.result is not None:
        lines.append(f"artifact:  {job.result}")
    return "\n".join(lines)


def log_text(line: LogLine) -> str:
    at = line.created_at.strftime("%H:%M:%S.%f")[:-3] if line.created_at else "-"
    return f"{at} {line.level:<7} {line.logger}: {line.message}"


class ProgressDisplay:
    """Shows a running job on `stream` (stderr): a progress bar with the fraction and the
    task's message, and its log lines as they come. On a terminal the bar is redrawn in
    place; otherwise each change is one line."""

    def __init__(self, stream: TextIO, job_id: str) -> None:
        self.stream = stream
        self.job_id = job_id
        self.live = stream.isatty()
        self.status = "pending"
        self.fraction: float | None = None
        self.message = ""
        self._drawn = False

    def bar(self) -> str:
        if self.fraction is None:
            return f"{self.job_id} {self.status} {self.message}".rstrip()
        filled = round(self.fraction * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = f"[{bar}] {self.fraction:4.0%} {self.message}".rstrip()
        return f"{line} ({self.status})" if self.status in TERMINAL_STATUSES else line

    def _clear(self) -> None:
        if self.live and self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False

    def _draw(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K" + self.bar())
            self._drawn = True
        else:
            self.stream.write(self.bar() + "\n")
        self.stream.flush()

    def show(self, event: JobEvent) -> None:
        """Take one event of the job."""
        if event.type in ("log", "log_truncated"):
            self._clear()
            self.stream.write("  " + log_text(LogLine.from_event(event)) + "\n")
            if self.live:
                self._draw()
            self.stream.flush()
            return
        if event.type == "progress":
            fraction = event.data.get("fraction")
            if isinstance(fraction, int | float):
                self.fraction = float(fraction)
            self.message = str(event.data.get("message") or "")
        elif event.type in ("started", "retrying", "requeued", "cancel_requested"):
            self.status = "running" if event.type == "started" else event.type
        elif event.terminal:
            self.status = event.type
        else:
            return
        self._draw()

    def close(self) -> None:
        if self.live and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False
