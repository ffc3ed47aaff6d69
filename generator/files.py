"""A minimal Files API (`/v1/files`): uploads kept until deleted, so a request can name one by `file_id` (the
spec's `input_reference: {"file_id": …}`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generator.errors import APIError, invalid
from generator.models import StoredFile
from generator.storage import ArtifactStore, is_file_id, new_file_id

# The spec's purposes (openai-python 3.60's `FilePurpose`); Hanul reads the file the same whatever the purpose.
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def file_not_found(file_id: str, param: str = "file_id") -> APIError:
    shown = file_id if len(file_id) <= 80 else file_id[:80] + "…"
    return APIError(404, f"No file found with id '{shown}'.", param=param, code="not_found")


def _storable(text: str) -> str:
    """A part header's text as a database can keep it: bytes that were not UTF-8 (aiohttp passes them on as
    surrogate escapes, which no database takes) become U+FFFD, and NUL, which PostgreSQL refuses, is dropped."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "")


class Files:
    """Uploaded files: a row each in `files`, the bytes under the artifacts folder's `files/`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: ArtifactStore) -> None:
        self.sessions = sessions
        self.store = store

    async def create(self, purpose: str, filename: str, content_type: str, data: bytes) -> StoredFile:
        if purpose not in PURPOSES:
            raise invalid("purpose", f"Invalid 'purpose': '{purpose[:40]}'; use one of {', '.join(PURPOSES)}.")
        if not data:
            raise invalid("file", "The uploaded file is empty.")
        file_id = new_file_id()
        path = await asyncio.to_thread(self.store.write_file, file_id, data)
        row = StoredFile(
            id=file_id,
            filename=_storable(filename)[:255] or "upload",
            purpose=purpose,
            content_type=_storable(content_type)[:100] or "application/octet-stream",
            bytes=len(data),
            path=path,
        )
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except BaseException:
            await asyncio.to_thread(self.store.delete_relative, path)
            raise
        return row

    async def get(self, file_id: str, param: str = "file_id") -> StoredFile:
        if is_file_id(file_id):
            async with self.sessions() as session:
                row = await session.get(StoredFile, file_id)
            if row is not None:
                return row
        raise file_not_found(file_id, param)

    async def read(self, file_id: str, param: str = "file_id") -> bytes:
        """A stored file's bytes (what `input_reference: {"file_id": …}` points at)."""
        path = self.path(await self.get(file_id, param))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # deleted since its row was read
            raise file_not_found(file_id, param) from None

    def path(self, row: StoredFile) -> Path:
        path = self.store.resolve(row.path)
        if not path.exists():
            raise APIError(
                404, f"The content of '{row.id}' is missing from storage.", param="file_id", code="not_found"
            )
        return path

    async def list(
        self, *, after: str | None, limit: int, order: str, purpose: str | None
    ) -> tuple[list[StoredFile], bool]:
        query = select(StoredFile)
        if purpose is not None:
            query = query.where(StoredFile.purpose == purpose)
        newest_first = order == "desc"
        async with self.sessions() as session:
            if after is not None:
                cursor = await session.get(StoredFile, after) if is_file_id(after) else None
                if cursor is None:
                    raise invalid("after", f"Invalid 'after': no file '{after[:80]}'.")
                at, ident = cursor.created_at, cursor.id
                if newest_first:
                    query = query.where(
                        (StoredFile.created_at < at) | ((StoredFile.created_at == at) & (StoredFile.id < ident))
                    )
                else:
                    query = query.where(
                        (StoredFile.created_at > at) | ((StoredFile.created_at == at) & (StoredFile.id > ident))
                    )
            columns = (StoredFile.created_at, StoredFile.id)
            query = query.order_by(*(c.desc() if newest_first else c.asc() for c in columns))
            rows = list((await session.scalars(query.limit(limit + 1))).all())
        return rows[:limit], len(rows) > limit

    async def delete(self, file_id: str) -> StoredFile:
        row = await self.get(file_id)
        async with self.sessions.begin() as session:
            stored = await session.get(StoredFile, row.id)
            if stored is not None:
                await session.delete(stored)
        await asyncio.to_thread(self.store.delete_relative, row.path)
        return row
