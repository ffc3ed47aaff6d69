"""Hanul's generator: a local OpenAI-compatible Videos API that renders clips with diffusers on the GPU."""
