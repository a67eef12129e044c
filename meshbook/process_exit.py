"""A process's end without the interpreter's teardown, for `meshbook` and the sandbox server.

After `meshbook run` has ended (kernels and sandbox stopped, every file written and closed), the
interpreter still frees its ~200,000 objects of ~1,500 modules one by one: 0.3 s on a quiet machine,
1.4 s on a busy one, while the user waits for the prompt. The sandbox server, with its frozen heap of
stored objects, is waited on by its owner the same way. What that teardown does that matters is done
here first, in its order: non-daemon threads joined (thread pools told to end first), `atexit`
functions run, stdout and stderr flushed. Then the process exits with its status.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn


def exit_without_teardown(status: int) -> NoReturn:
    """End this process with `status` once its threads, atexit functions and output are done."""
    # What Python's own finalization calls first: wakes idle thread pools and joins non-daemon threads.
    shutdown = getattr(threading, "_shutdown", None)
    if callable(shutdown):
        shutdown()
    atexit._run_exitfuncs()
    logging.shutdown()  # idempotent: flushes and closes log handlers if atexit did not
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
