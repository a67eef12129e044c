"""`exit_without_teardown` skips only the interpreter's teardown: threads, atexit and output still finish."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = """
import atexit, sys, threading, time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from meshbook.process_exit import exit_without_teardown

out = Path(sys.argv[1])
pool = ThreadPoolExecutor(1)
pool.submit(time.sleep, 0)  # an idle pool worker: told to end, not waited on forever
def late() -> None:
    time.sleep(0.5)
    (out / "thread").write_text("done")
threading.Thread(target=late).start()
atexit.register(lambda: (out / "atexit").write_text("done"))
print("buffered, no newline", end="")
sys.stderr.write("to stderr")
exit_without_teardown(3)
print("never")
"""


def test_the_status_output_threads_and_atexit_all_survive(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 3, done.stderr
    assert (done.stdout, done.stderr) == ("buffered, no newline", "to stderr")
    assert (tmp_path / "thread").read_text() == "done", "a non-daemon thread was cut short"
    assert (tmp_path / "atexit").read_text() == "done", "an atexit function did not run"
