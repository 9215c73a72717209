"""What tuibatch prints, through stdlib ``logging``, and always escaped for the terminal.

Three streams, one formatter:

* ``tuibatch.*`` (the engine's ``tuibatch.engine``, the run's ``tuibatch.run``): timestamped
  lines on stdout, ``HH:MM:SS message``, filtered by the ``--log-level``;
* :data:`notice` (``tuibatch.notice``): one-line messages to the user on stderr, ``tuibatch: …``;
* :data:`out` (``tuibatch.out``): a command's result lines on stdout, as they are.

Every line goes through :class:`VisibleFormatter`, which escapes control characters with
:func:`tuibatch.safe_text.visible` (an escape sequence in an error message or a key can never
reach the terminal raw, and a newline in a key cannot forge a line) and blanks the secrets it
was told about. No call site has to remember either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from .options import LogLevel
from .safe_text import visible, visible_block

#: between INFO (one line per item event) and WARNING: progress and summary lines
PROGRESS = 25
logging.addLevelName(PROGRESS, "PROGRESS")
LEVELS: dict[LogLevel, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "progress": PROGRESS,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

ROOT = "tuibatch"
notice = logging.getLogger("tuibatch.notice")
out = logging.getLogger("tuibatch.out")
#: progress and summary lines of a run
run_log = logging.getLogger("tuibatch.run")

_REDACTED = "[redacted]"


class VisibleFormatter(logging.Formatter):
    """A Formatter that escapes the message (one record, one line) and redacts secrets."""

    def __init__(self, fmt: str, datefmt: str | None = None, *, secrets: Iterable[str] = ()):
        super().__init__(fmt, datefmt)
        self.secrets = tuple(s for s in secrets if s)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _REDACTED)
        return text

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = visible(self._clean(record.message))
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:  # type: ignore[override]  # noqa: N802
        return visible_block(self._clean(super().formatException(ei)))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return visible_block(self._clean(super().formatStack(stack_info)))


class ConsoleHandler(logging.Handler):
    """Writes to the *current* ``sys.stdout``/``sys.stderr``; a closed pipe never stops a batch."""

    def __init__(self, *, err: bool = False):
        super().__init__()
        self.err = err

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stderr if self.err else sys.stdout
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):  # a gone terminal, `| head`: the batch goes on
            pass
        except Exception:
            self.handleError(record)


def _install(logger: logging.Logger, handler: logging.Handler, level: int) -> None:
    for old in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def configure(level: LogLevel = "info", *, secrets: Iterable[str] = ()) -> None:
    """Set up the three streams; calling it again replaces the earlier set-up."""
    secrets = tuple(secrets)
    stamped = ConsoleHandler()
    stamped.setFormatter(VisibleFormatter("%(asctime)s %(message)s", "%H:%M:%S", secrets=secrets))
    _install(logging.getLogger(ROOT), stamped, LEVELS[level])
    err = ConsoleHandler(err=True)
    err.setFormatter(VisibleFormatter("tuibatch: %(message)s", secrets=secrets))
    _install(notice, err, logging.INFO)  # messages to the user are not filtered by --log-level
    plain = ConsoleHandler()
    plain.setFormatter(VisibleFormatter("%(message)s", secrets=secrets))
    _install(out, plain, logging.INFO)


def progress(message: str, *args: object) -> None:
    run_log.log(PROGRESS, message, *args)
