"""The command line's live progress display, on a terminal and on a pipe."""

import io
from typing import Any

from taskexec_client.display import ProgressDisplay
from taskexec_client.models import JobEvent

CLEAR = "\r\x1b[2K"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def event(seq: int, type_: str, **data: Any) -> JobEvent:
    return JobEvent(seq=seq, type=type_, created_at=None, data=data)


EVENTS = [
    event(1, "created"),
    event(2, "started", attempt=1),
    event(3, "progress", fraction=0.5, message="half"),
    event(4, "log", level="INFO", logger="task", message="a line"),
    event(5, "progress", fraction=1.0, message="all"),
    event(6, "completed", status="completed"),
]


def test_on_a_terminal_the_bar_is_redrawn_in_place_below_the_log_lines() -> None:
    screen = Terminal()
    display = ProgressDisplay(screen, "J1")
    for item in EVENTS:
        display.show(item)
    display.close()

    out = screen.getvalue()
    assert out.startswith(CLEAR + "J1 running")
    assert out.count("\n") == 2  # the log line, and the final newline
    half = "[############............]  50% half"
    assert f"{CLEAR}{half}{CLEAR}  - INFO    task: a line\n{CLEAR}{half}{CLEAR}" in out
    assert out.endswith(f"{CLEAR}[########################] 100% all (completed)\n")


def test_on_a_pipe_each_change_is_one_line() -> None:
    pipe = io.StringIO()
    display = ProgressDisplay(pipe, "J1")
    for item in EVENTS:
        display.show(item)
    display.close()

    assert pipe.getvalue().splitlines() == [
        "J1 running",
        "[############............]  50% half",
        "  - INFO    task: a line",
        "[########################] 100% all",
        "[########################] 100% all (completed)",
    ]
