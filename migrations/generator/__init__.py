"""The generator's migration history (upgraded by the generator alone; it needs no bot code)."""
