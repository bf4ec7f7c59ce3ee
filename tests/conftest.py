"""Suite-wide settings.

Property tests draw fresh examples on every local run, which is how they find new
counterexamples. CI (`.ci/run` sets MERCAT_HYPOTHESIS_PROFILE=ci) draws the same examples
on every run instead: a red CI run then means the change under test broke something, never
that this run drew an input no earlier run had. A counterexample found locally is kept
with `@example` beside the property, so that CI checks it from then on."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("MERCAT_HYPOTHESIS_PROFILE", "default"))
