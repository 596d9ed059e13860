"""``python -m sluice`` and the ``sluice`` console script: the Rust command line, in-process.

The arguments go to the same code as the standalone ``sluice`` binary (``sluice scan``,
``redact``, ``check``, ``approve``, ``keygen``, ``policy``, ``rules``).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence

from sluice import _native


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``sluice`` with ``argv`` (default: the process arguments) and returns its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Rust writes to the file descriptors directly: Python's buffers go first.
    sys.stdout.flush()
    sys.stderr.flush()
    if threading.current_thread() is threading.main_thread():
        # The command runs without the GIL; let Ctrl-C stop it as it stops the binary.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return _native.cli_main(["sluice", *args])


if __name__ == "__main__":
    sys.exit(main())
