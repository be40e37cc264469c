"""A rich progress bar over a sweep's runs (done / running / failed), or plain log lines."""

from __future__ import annotations

import logging

log = logging.getLogger("tgsci.sweep")


class Progress:
    """A rich progress bar over runs (done / running / failed), or plain log lines."""

    def __init__(self, enabled: bool, total: int, console=None):
        self.enabled = enabled
        self.total = total
        self.console = console
        self.progress = None
        self.task = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.console = self.console or Console(stderr=True)
            self.progress = Progress(
                TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), console=self.console, transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("sweep", total=self.total, info="")
        return self

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            log.info(text)

    def update(self, states: dict, running: int) -> None:
        done = sum(1 for s in states.values() if s == "finished")
        failed = sum(1 for s in states.values() if s == "failed")
        if self.progress is not None:
            info = f"[green]{done} done[/] · [cyan]{running} running[/] · [red]{failed} failed[/]"
            self.progress.update(self.task, completed=done + failed, info=info)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
