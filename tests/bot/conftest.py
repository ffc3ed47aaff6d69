"""Fixtures for the bot's tests."""

from tests.support.llm_server import llm_server  # noqa: F401  (the scriptable OpenAI-compatible LLM server)
