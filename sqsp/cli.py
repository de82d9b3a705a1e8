"""What every command-line entry point does with an error the user caused: one line, exit 2.

``python studies/<name>.py``, ``python -m sqsp.train``, ``python -m sqsp.zoo`` and
``python analysis/tables.py`` run their ``main`` through ``run``. A user error
(``sqsp.errors.USER_ERRORS``: a ConfigError, a data root laid out wrongly, an unknown or
tampered generator, a missing file, a study folder in use…) is printed as
``<prog>: error: <message>`` and the process exits with 2, as argparse does for a bad flag.
A traceback would only hide the message; ``SQSP_DEBUG=1`` shows it anyway. Ctrl-C outside
a study (a study handles it itself, see sqsp/tune/folder.py) ends with 130 and one line.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from .errors import USER_ERRORS

DEBUG_ENV = "SQSP_DEBUG"


def prog(module_form: str) -> str:
    """The name to show in usage and errors: the console command the user typed (``sqsp-train``,
    installed by pyproject.toml), else the module or script form (``python -m sqsp.train``)."""
    typed = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return typed if typed.startswith("sqsp-") else module_form


def run(prog: str, main: Callable[[], int | None]) -> int:
    """``main()``'s exit code, or 2 after one line on stderr for a user error."""
    try:
        code = int(main() or 0)
        sys.stdout.flush()  # here, so that a reader that closed the pipe is met below, not at exit
        return code
    except BrokenPipeError:
        # ``… | head``: the reader has what it wanted. Python's recipe: point stdout at devnull so
        # the interpreter's final flush does not raise again, and exit as a process killed by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except USER_ERRORS as e:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"{prog}: error: {message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def message(error: BaseException) -> str:
    """The error's own text; for OSError without one (pyarrow's bare path), what is missing."""
    text = str(error).strip()
    if isinstance(error, OSError) and error.filename and (not text or text == str(error.filename)):
        return f"{error.strerror or type(error).__name__}: {error.filename}"
    if isinstance(error, ModuleNotFoundError) and "pip install" not in text and "clone" not in text:
        return f"{text} (install the pinned packages: pip install -r requirements.txt)"
    return text or type(error).__name__
