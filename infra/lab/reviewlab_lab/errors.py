"""How the CLI reports a failure: one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager

# Set REVIEWLAB_DEBUG=1 to see the traceback of an unexpected error.
DEBUG_ENV = "REVIEWLAB_DEBUG"


class LabFailed(RuntimeError):
    """A step of the lab failed; the message says what and where to look."""


def _message(exc: BaseException) -> str:
    """What went wrong, and what to do next, for the exceptions the CLI meets."""
    from reviewlab_common import dns, secrets
    from reviewlab_common.topology import TopologyError

    if isinstance(exc, LabFailed | TopologyError | secrets.SecretsMissing):
        return str(exc)
    if isinstance(exc, dns.DnsError):
        return f"the lab's DNS did not answer: {exc}; is the lab up? (`reviewlab status`)"
    if isinstance(exc, xmlrpc.client.Fault):
        return f"the process supervisor refused: {exc.faultString}"
    if isinstance(exc, subprocess.CalledProcessError):
        command = " ".join(str(part) for part in exc.cmd)
        return f"`{command}` failed with exit code {exc.returncode}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 to see where)"


def describe(exc: BaseException) -> str:
    """EXC as one line: what went wrong and what to do next (what `fail` prints)."""
    return " ".join(_message(exc).split())


def fail(exc: BaseException) -> None:
    """Print one line for EXC and exit 1."""
    # A LabFailed message may list the nodes that failed, one per line; others are one line.
    text = str(exc).strip() if isinstance(exc, LabFailed) else " ".join(_message(exc).split())
    print(f"error: {text}", file=sys.stderr, flush=True)
    sys.exit(1)


@contextmanager
def one_line() -> Iterator[None]:
    """Run a CLI command; any failure becomes one line on stderr and exit status 1."""
    try:
        yield
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`reviewlab status | head`): stop quietly, as `cat` would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        fail(exc)
