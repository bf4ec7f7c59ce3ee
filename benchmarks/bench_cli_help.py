"""How long `mercat --help` and a command's `--help` take, beside a bare Typer start-up.

Building the command tree imports no registry, and a command's help lists its choices
(mechanisms, collective rules, experiments) without importing them (docs/cli.md): both times
should stay close to the reference, a Python process that only imports typer and rich. Each
command runs `--repeats` times in a fresh process, interleaved so that a change in the
machine's load hits all of them alike; medians and the spread are printed as JSON.
`--compare SRC` adds the same two commands run from another checkout's `src` directory (an
older mercat: `git archive COMMIT src | tar -x -C /tmp/old`), side by side in the same run.

    .venv/bin/python benchmarks/bench_cli_help.py [--repeats 7] [--compare /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "reference: import typer, rich": [sys.executable, "-c", "import typer, rich.console"],
    "mercat --help": [sys.executable, "-m", "mercat.cli", "--help"],
    "mercat clear --help": [sys.executable, "-m", "mercat.cli", "clear", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", help="another checkout's src directory")
    args = parser.parse_args()
    runs = {name: (command, None) for name, command in COMMANDS.items()}
    if args.compare:
        env = {**os.environ, "PYTHONPATH": args.compare}
        for name, command in COMMANDS.items():
            if name.startswith("mercat"):
                runs[f"{name} ({args.compare})"] = (command, env)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (command, env) in runs.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env)
            seconds[name].append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "repeats": args.repeats,
                "load_average": os.getloadavg()[0],
                "seconds": {
                    name: {
                        "median": statistics.median(times),
                        "min": min(times),
                        "max": max(times),
                    }
                    for name, times in seconds.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
