"""`python -m mercat.cli ...` is `mercat ...` (for subprocesses started with sys.executable)."""

from mercat.cli import main

main()
