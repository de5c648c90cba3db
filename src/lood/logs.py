"""Logging set-up shared by the workflow scripts: one log file per job, progress with counts and ETA."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path


def setup_logging(log_file: str | Path | None, name: str = "lood") -> logging.Logger:
    """Send the ``lood`` loggers to ``log_file`` (and stderr) with timestamps."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger("lood")
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    sys.excepthook = log_uncaught
    return logging.getLogger(name)


def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: object) -> None:
    """Uncaught exceptions of a job go into its log file too (Snakemake points users there),
    once, with the traceback; Ctrl-C keeps Python's own handling."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)  # type: ignore[arg-type]
        return
    logging.getLogger("lood").error(
        "job failed: %s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb)
    )


class Progress:
    """Log ``done/total``, elapsed time and ETA at most every ``every`` seconds."""

    def __init__(self, logger: logging.Logger, total: int, what: str, every: float = 5.0) -> None:
        self.logger, self.total, self.what, self.every = logger, total, what, every
        self.start = time.perf_counter()
        self.last = -float("inf")

    def update(self, done: int, extra: str = "") -> None:
        now = time.perf_counter()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else float("nan")
        self.logger.info(
            "%s %d/%d (%.0f%%) elapsed %.1fs eta %.1fs %s",
            self.what,
            done,
            self.total,
            100.0 * done / max(self.total, 1),
            elapsed,
            eta,
            extra,
        )
