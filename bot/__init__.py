"""Hanul's Discord bot: conversations, prompt writing and per-member history over the generator's API."""
