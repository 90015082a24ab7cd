"""recut/stop.py: the per-process stop flag and its hooks (in a subprocess: the flag cannot be unset)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
from recut import stop
calls = []
stop.on_request(lambda: calls.append("early"))
stop.check()  # no stop yet: returns
assert not stop.requested()
stop.request()
stop.request()  # a second request (a second signal) runs no hook again
assert stop.requested() and calls == ["early"], calls
stop.on_request(lambda: calls.append("late"))  # registered after the request: runs at once
assert calls == ["early", "late"], calls
try:
    stop.check()
except stop.Cancelled as exc:
    print("cancelled:", exc)
else:
    raise SystemExit("check() did not raise after a stop request")
"""


def test_a_stop_request_runs_each_hook_once_and_check_raises() -> None:
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("cancelled: the run was stopped")
