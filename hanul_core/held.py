"""Held status requests (`GET /v1/videos/{id}?wait=S&seen=TOKEN`, Hanul's addition to the Videos API): the token
that says which state of a job the client last saw. The generator answers a held request once the job's state is
no longer the one the token names; the bot sends the token of what it last showed. One spelling, for both."""

from __future__ import annotations


def seen_token(status: str, progress: int, queue_position: int | None) -> str:
    """`status:progress:queue_position`, the position empty when the job is not queued: e.g. `queued:0:3`,
    `in_progress:40:`."""
    return f"{status}:{progress}:{'' if queue_position is None else queue_position}"
