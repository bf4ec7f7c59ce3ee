"""`mercat --version` prints the installed version and runs no command."""

import subprocess
import sys

from typer.testing import CliRunner

from mercat import __version__
from mercat.cli import app


def test_version_prints_the_package_version_and_exits_0():
    out = CliRunner().invoke(app, ["--version"])
    assert out.exit_code == 0
    assert out.stdout == f"mercat {__version__}\n"


def test_the_installed_command_answers_version_too():
    done = subprocess.run(
        [sys.executable, "-m", "mercat.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"mercat {__version__}"
