"""The code an IPython kernel runs once after every start, for the Jupyter and E2B backends.

Both backends execute a program chunk by chunk in an IPython kernel (a
Jupyter kernel, an E2B code context), and an eager run must print exactly
what one serial run of the program prints. Out of the box a kernel behaves
like a notebook instead. :func:`setup_code` returns the one script that fixes
that, run silently as the kernel's first execution:

* stdout and stderr arrive in the order the code wrote them (ipykernel
  buffers each stream on its own);
* a cell's leading blank lines are kept, so line numbers of code padded to its
  place in the program hold in tracebacks;
* with ``semantics="script"`` (the default of both backends): a bare
  expression echoes nothing, a matplotlib figure appears only at
  ``plt.show()`` (never drawn behind the code's back at the end of a chunk),
  and ``input()`` / ``getpass()`` raise ``EOFError`` at once, as in a script
  run without a terminal (the local worker says the same words);
* the working directory and extra environment variables, for kernels that
  could not be launched with them (a gateway's, a sandbox's), are applied
  inside the kernel; a working directory that does not exist there (the CLI
  passes its own, which a remote machine may lack) is created.

The script ends by printing the kernel's working directory: E2B remembers it,
to come back there after a context restart.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["EOF_MESSAGE", "SEMANTICS", "Semantics", "check_semantics", "setup_code"]

#: ``"script"``: what one serial run prints; ``"notebook"``: IPython's display behaviour
Semantics = Literal["script", "notebook"]
SEMANTICS: tuple[Semantics, ...] = ("script", "notebook")

#: what ``input()`` raises with under script semantics, on every backend
EOF_MESSAGE = "input() is not available: the code runs without a terminal"

_SETUP = """\
def __eager_rt_setup(script, cwd, env, eof_message):
    import os
    import sys

    ip = get_ipython()

    # ipykernel buffers stdout and stderr separately and flushes each on a timer,
    # so "a" (stdout), "b" (stderr), "c" (stdout) would arrive as "a c", "b".
    # Flushing the other stream before a write keeps the order the code wrote in.
    # IPython swaps each stream's ``write`` for a history tee around every cell
    # and puts the old one back after it, so the wrapper goes on per cell.
    def order_streams(*args):
        for stream, other in ((sys.stdout, sys.stderr), (sys.stderr, sys.stdout)):
            write = stream.write
            if getattr(write, "_eager_rt_ordered", False):
                continue

            def ordered_write(text, *more, _write=write, _other=other, **options):
                if getattr(_other, "_flush_pending", False):
                    _other.flush()
                return _write(text, *more, **options)

            ordered_write._eager_rt_ordered = True
            stream.write = ordered_write

    ip.events.register("pre_execute", order_streams)

    # IPython drops a cell's leading blank lines, which shifts every line number
    # in its tracebacks; the runtime pads a batch with blank lines precisely so
    # that they match the lines of the whole program.
    transforms = ip.input_transformer_manager.cleanup_transforms
    transforms[:] = [t for t in transforms if getattr(t, "__name__", "") != "leading_empty_lines"]

    if env:
        os.environ.update(env)
    if cwd:
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)

    if script:
        # no value echo for a bare expression
        ip.ast_node_interactivity = "none"

        # matplotlib_inline's post_execute flush_figures shows (and closes)
        # every figure touched in a cell once draw_if_interactive flagged it.
        # Clearing the flag and the list of figures to draw, from a hook that
        # runs before the flush, holds figures until plt.show(); leaving
        # interactive mode, as a script runs, stops the flagging from the
        # next cell on, whatever the order of the hooks.
        def hold_figures(*args):
            inline = sys.modules.get("matplotlib_inline.backend_inline")
            if inline is not None:
                inline.show._draw_called = False
                inline.show._to_draw = []
            mpl = sys.modules.get("matplotlib")
            if mpl is not None and mpl.is_interactive():
                mpl.interactive(False)

        ip.events.register("post_execute", hold_figures)

        # Nobody will answer input() or getpass(): fail at once, as a script
        # with its stdin closed does. ipykernel installs its own raw_input and
        # getpass before every cell, taken from the kernel's attributes.
        def no_input(prompt="", *args, **options):
            raise EOFError(eof_message)

        kernel = getattr(ip, "kernel", None)
        if kernel is not None:
            kernel.raw_input = no_input
            kernel.getpass = no_input
        else:
            import builtins
            import getpass

            builtins.input = no_input
            getpass.getpass = no_input

    print(os.getcwd(), end="")

"""


def check_semantics(semantics: str) -> Semantics:
    """``semantics`` if it is one of :data:`SEMANTICS`, else :class:`ValueError`."""
    for known in SEMANTICS:
        if semantics == known:
            return known
    raise ValueError(f"semantics must be 'script' or 'notebook', not {semantics!r}")


def setup_code(
    *,
    semantics: Semantics,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """The code a kernel runs (silently) right after it starts or restarts.

    ``cwd`` and ``env`` are applied inside the kernel; pass them only for a
    kernel that was not launched with them.
    """
    call = (
        f"__eager_rt_setup({semantics == 'script'!r}, {cwd!r}, {dict(env or {})!r}, "
        f"{EOF_MESSAGE!r})\n"
    )
    return _SETUP + call + "del __eager_rt_setup\n"
