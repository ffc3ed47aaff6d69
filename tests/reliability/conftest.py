"""Reliability tests: real child processes, kill -9, fuzzing, load and scale-out on the tiny CPU model."""

from __future__ import annotations

from tests.generator.conftest import quiet_diffusers  # noqa: F401  (fixture)
from tests.support.processes import generator_processes  # noqa: F401  (fixture)
