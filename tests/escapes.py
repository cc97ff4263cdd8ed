"""Code that tries to break out of a sandbox, shared by the backends' isolation tests.

Each backend's tests run the same attempt and check both sides: what the code
inside reports, and that the host is untouched.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

#: prints ``bombing`` once, then forks for ever; only a pids limit (and the timeout) stop it
FORK_BOMB = textwrap.dedent(
    """
    import os
    print('bombing', flush=True)
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
)


def write_attempts(outside: Sequence[str], inside: Sequence[str]) -> str:
    """Code that appends to each path of ``outside`` and writes ``fine`` to each of ``inside``.

    It prints ``wrote PATH`` or ``denied PATH REASON`` per outside path, and
    ``wrote PATH`` per inside path (a write refused there raises: the test fails).
    """
    return textwrap.dedent(
        f"""
        import os
        for path in {list(outside)!r}:
            try:
                with open(path, 'a') as f:
                    f.write('x')
                print('wrote', path)
            except OSError as exc:
                print('denied', path, exc.strerror)
        for path in {list(inside)!r}:
            with open(path, 'w') as f:
                f.write('fine')
            print('wrote', path)
        """
    )


def denied(stdout: str) -> list[str]:
    """The paths :func:`write_attempts` reported as denied, in order."""
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("denied ")]
