"""Run the gankit CLI in-process, as a shell would see it (exit code, stdout, stderr)."""

import io
from contextlib import redirect_stderr, redirect_stdout

from gankit.cli import main


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()
