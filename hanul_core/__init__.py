"""What both services use and neither owns: the settings base, the database plumbing (engine, sessions,
migration runner) and logging. It imports neither `bot` nor `generator`."""
