"""Alembic migrations, one history per service: `generator/` (video jobs and their artifacts) and `bot/` (members,
conversations, messages, generations). Each has its own version table and is upgraded by its own service."""
