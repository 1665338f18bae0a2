"""Every command's frame: a failure becomes one line and an exit code, Ctrl-C is 130 at any moment,
the run's temp folder (fmnist.scratch) and the exports lock are released when the command ends."""
from __future__ import annotations

import contextlib
import os
import signal
import sys

from fmnist import scratch

HELD = contextlib.ExitStack()  # the exports folder's lock (fmnist.lock), released when the command ends


class _Interrupt:
    """Ctrl-C sets a flag as well as raising: a KeyboardInterrupt that lands in a finalizer is
    swallowed by Python ("Exception ignored in ..."), and the flag still makes the exit 130."""
    seen = False

    @classmethod
    def handler(cls, signum, frame):
        cls.seen = True
        raise KeyboardInterrupt


def _quiet_exit() -> None:
    """After an interrupt, a half-started Dask cluster's atexit clean-up would print a traceback and
    its logger a line: the one line said is the last."""
    import logging
    sys.unraisablehook = lambda unraisable: None
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def guarded(main):
    """Turn any failure into a one-line message and an exit code (`FmnistError.exit_code`; 130 for
    Ctrl-C, whatever a library made of the KeyboardInterrupt; 1 for anything unexpected, whose
    traceback FMNIST_DEBUG=1 shows)."""
    def wrapper(argv=None):
        from fmnist.errors import FAILURE_EXIT, INTERRUPT_EXIT, FmnistError, one_line
        _Interrupt.seen = False
        previous = signal.signal(signal.SIGINT, _Interrupt.handler)
        try:
            with scratch.contained():
                code = main(argv)
            if _Interrupt.seen:
                raise KeyboardInterrupt
            return code
        except (KeyboardInterrupt, Exception) as e:
            if _Interrupt.seen or isinstance(e, KeyboardInterrupt):  # TensorFlow turns it into a ValueError
                print("interrupted: finished outputs are kept, nothing half-written was left", file=sys.stderr)
                _quiet_exit()
                return INTERRUPT_EXIT
            if isinstance(e, OSError) and not isinstance(e, FmnistError):  # a full disk, an unwritable folder
                print(f"error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or one_line(e)}",
                      file=sys.stderr)
                return FAILURE_EXIT
            if os.environ.get("FMNIST_DEBUG") and not isinstance(e, FmnistError):
                raise
            expected = isinstance(e, FmnistError)
            print(f"error: {one_line(e) if expected else 'unexpected ' + one_line(e) + ' (FMNIST_DEBUG=1 shows where)'}",
                  file=sys.stderr)
            return e.exit_code if expected else FAILURE_EXIT
        finally:
            HELD.close()
            signal.signal(signal.SIGINT, previous)
    wrapper.__doc__ = main.__doc__
    return wrapper
