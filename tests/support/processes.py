"""`python -m generator serve` as real child processes (for crash, scale-out and logging tests), and a look at
the database they share.

Every process started through the `generator_processes` fixture is killed when the test ends, pass or fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from generator.models import VideoArtifact, VideoJob
from hanul_core.db import create_engine, session_factory

REPO_ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(r"Hanul generator: (http://\S+/v1)")


def generator_environment(data_dir: Path, **overrides: Any) -> dict[str, str]:
    """The environment of a child generator on the tiny CPU model; `overrides` are GENERATOR_… variables."""
    hanul_variable = re.compile(r"^(HANUL_|GENERATOR_|LLM_|DISCORD_)|^(DATABASE_URL|LOG_LEVEL)$")
    env = {name: value for name, value in os.environ.items() if not hanul_variable.match(name)}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",  # several generators share a small CI box
            "HANUL_DATA_DIR": str(data_dir),
            "GENERATOR_MODEL": "tiny",
            "GENERATOR_DEVICE": "cpu",
            "GENERATOR_DTYPE": "float32",
            "GENERATOR_PORT": "0",
            "GENERATOR_POLL_INTERVAL": "0.05",
            "GENERATOR_LEASE_SECONDS": "3",
        }
    )
    env.update({name: str(value) for name, value in overrides.items()})
    return env


@dataclass
class GeneratorProcess:
    """One `python -m generator serve` child; its stdout and stderr go to `log_path`."""

    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    base_url: str = ""
    _log_offset: int = 0

    def start(self, timeout: float = 90.0) -> GeneratorProcess:
        """Start (or restart) the process and wait until it serves HTTP."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> GeneratorProcess:
        """Start the process without waiting (to start several at once); then `wait_ready`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.base_url = ""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "generator", "serve"],
                cwd=self.env["HANUL_DATA_DIR"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = 90.0) -> GeneratorProcess:
        """Wait for the line `python -m generator serve` prints once it listens, and take the URL from it."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _READY.search(self.log_path.read_bytes()[self._log_offset :].decode("utf-8", "replace"))
            if found:
                self.base_url = found.group(1)
                return self
            if self.process.poll() is not None:
                status = self.process.returncode
                raise RuntimeError(f"generator {self.name} exited with {status}:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"generator {self.name} did not start in {timeout:g} s:\n{self.log()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs, leases stay held until they expire."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean stop), then SIGKILL if it has not exited in time; the exit status."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""


class ProcessFactory:
    """Starts generators for one test and kills whatever is left of them at its end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[GeneratorProcess] = []

    def __call__(self, name: str, data_dir: Path | None = None, **overrides: Any) -> GeneratorProcess:
        data_dir = data_dir or self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        overrides.setdefault("GENERATOR_WORKER_ID", name)
        child = GeneratorProcess(name, generator_environment(data_dir, **overrides), self.root / f"{name}.log")
        self.started.append(child)
        return child

    def cleanup(self) -> None:
        for child in self.started:
            child.kill()


@pytest.fixture
def generator_processes(tmp_path: Path) -> Iterator[ProcessFactory]:
    """`generator_processes(name, **GENERATOR_…)` → an unstarted GeneratorProcess; all are killed at teardown."""
    factory = ProcessFactory(tmp_path / "processes")
    try:
        yield factory
    finally:
        factory.cleanup()


@dataclass(frozen=True)
class JobRow:
    id: str
    status: str
    attempts: int
    lease_owner: str | None
    progress: int
    artifacts: dict[str, int]  # kind → rows of that kind


async def job_rows(database_url: str) -> dict[str, JobRow]:
    """Every job in the database with its artifact rows counted by kind, read straight from the tables."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            jobs = (await session.scalars(select(VideoJob))).all()
            artifacts = (await session.scalars(select(VideoArtifact))).all()
            rows = {}
            for job in jobs:
                kinds: dict[str, int] = {}
                for artifact in artifacts:
                    if artifact.job_id == job.id:
                        kinds[artifact.kind] = kinds.get(artifact.kind, 0) + 1
                rows[job.id] = JobRow(job.id, job.status, job.attempts, job.lease_owner, job.progress, kinds)
            return rows
    finally:
        await engine.dispose()


def job_folder_contents(folder: Path) -> dict[str, set[str]]:
    """The files under a job's folder, by subfolder ("." for the folder itself), less its live preview: one file per
    job at the folder's root, overwritten in place by whichever attempt renders (not an attempt's own file)."""
    contents: dict[str, set[str]] = {}
    for path in folder.rglob("*"):
        if path.is_file() and path.relative_to(folder).as_posix() != "preview.webp":
            contents.setdefault(path.parent.relative_to(folder).as_posix(), set()).add(path.name)
    return contents
