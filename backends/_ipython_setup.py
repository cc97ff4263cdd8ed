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
* an interrupt stops a cell that awaits (ipykernel turns it into the
  cancellation of the cell, which without a wakeup of the event loop waits
  for whatever wakes it next);
* with ``semantics="script"`` (the default of both backends): a bare
  expression echoes nothing, a matplotlib figure appears only at
  ``plt.show()`` (never drawn behind the code's back at the end of a chunk),
  and ``input()`` / ``getpass()`` raise ``EOFError`` at once, as in a script
  run without a terminal (the local worker says the same words);
* the working directory and extra environment variables, for kernels that
  could not be launched with them (a gateway's, a sandbox's), are applied
  inside the kernel; a working directory that does not exist there (the CLI
  passes its own, which a remote machine may lack) is created;
* host tools: ``__eager_rt_tools__`` (what generated tool stubs call) and
  ``__eager_rt_peek__`` go into the builtins, over the backend's channel
  (:mod:`._kernel_tools`: input requests on Jupyter, a Unix socket on E2B).
  The modules they need travel inside this script as source, read from the
  package's own files (one copy of each), the way the worker ships them.

The script ends by printing the kernel's working directory: E2B remembers it,
to come back there after a context restart.
"""

from __future__ import annotations

import os
from typing import Literal

__all__ = ["EOF_MESSAGE", "SEMANTICS", "Semantics", "check_semantics", "setup_code"]

#: ``"script"``: what one serial run prints; ``"notebook"``: IPython's display behaviour
Semantics = Literal["script", "notebook"]
SEMANTICS: tuple[Semantics, ...] = ("script", "notebook")

#: what ``input()`` raises with under script semantics, on every backend
EOF_MESSAGE = "input() is not available: the code runs without a terminal"

#: modules the kernel needs for host tools, shipped as source (standard library only)
BUNDLED_MODULES = ("_tool_wire", "_kernel_tools", "_statements")

_SETUP = """\
def __eager_rt_setup(script, cwd, env, eof_message, tools, tool_socket, bundled):
    import os
    import sys
    import types

    ip = get_ipython()

    def load(name):
        qualified = "_eager_rt" + name
        module = sys.modules.get(qualified)
        if module is None:
            module = types.ModuleType(qualified)
            sys.modules[qualified] = module
            code = compile(bundled[name], "<eager_rt " + name.strip("_") + ">", "exec")
            exec(code, module.__dict__)
        return module

    # host tools: installed before semantics replace raw_input, so the transport
    # keeps the kernel's real input request
    load("_kernel_tools").install(ip, load("_tool_wire"), tools, tool_socket)
    # which statement of a batch wrote what: a mark before each one
    load("_kernel_tools").mark_statements(ip, load("_statements"))

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

    # An interrupt while a cell awaits (top-level await, an async tool call):
    # ipykernel's SIGINT handler only schedules the cell's cancellation on the
    # event loop, which sleeps in its selector until something else wakes it
    # (tornado's add_callback does not, from the loop's own thread). A wakeup
    # fd the loop reads makes every signal wake it, so the cancellation runs
    # at once. Left alone if some other wakeup fd is set already.
    try:
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        if previous != -1:
            signal.set_wakeup_fd(previous)
            os.close(wake_r)
            os.close(wake_w)
        else:
            loop.add_reader(wake_r, os.read, wake_r, 4096)
    except (RuntimeError, ValueError, OSError, NotImplementedError):
        pass  # no running loop here, or not in the main thread

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
    else:
        # Executions offer stdin (for the tool replies); input() still fails the
        # way it did when they did not, for a front end that cannot answer it.
        def no_stdin(prompt="", *args, **options):
            from IPython.core.error import StdinNotImplementedError

            raise StdinNotImplementedError(
                "raw_input was called, but this frontend does not support input requests."
            )

        kernel = getattr(ip, "kernel", None)
        if kernel is not None:
            kernel.raw_input = no_stdin
            kernel.getpass = no_stdin

    print(os.getcwd(), end="")

"""


def check_semantics(semantics: str) -> Semantics:
    """``semantics`` if it is one of :data:`SEMANTICS`, else :class:`ValueError`."""
    for known in SEMANTICS:
        if semantics == known:
            return known
    raise ValueError(f"semantics must be 'script' or 'notebook', not {semantics!r}")


_sources: dict[str, str] = {}


def _bundled() -> dict[str, str]:
    """The source of each module in :data:`BUNDLED_MODULES`, read once from the package."""
    if not _sources:
        here = os.path.dirname(os.path.abspath(__file__))
        for name in BUNDLED_MODULES:
            with open(os.path.join(here, name + ".py"), encoding="utf-8") as f:
                _sources[name] = f.read()
    return _sources


def setup_code(
    *,
    semantics: Semantics,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    tool_socket: str | None = None,
) -> str:
    """The code a kernel runs (silently) right after it starts or restarts.

    ``cwd`` and ``env`` are applied inside the kernel; pass them only for a
    kernel that was not launched with them. Tool replies come through input
    requests (Jupyter), or, with ``tool_socket``, through a Unix socket at
    that path (E2B, see :mod:`._kernel_tools`).
    """
    tools = "stdin" if tool_socket is None else "socket"
    call = (
        f"__eager_rt_setup({semantics == 'script'!r}, {cwd!r}, {dict(env or {})!r}, "
        f"{EOF_MESSAGE!r}, {tools!r}, {tool_socket!r}, {_bundled()!r})\n"
    )
    return _SETUP + call + "del __eager_rt_setup\n"
