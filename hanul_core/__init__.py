"""What both services use and neither owns: the settings base, the database plumbing (engine, sessions,
migration runner), logging, and the one wire spelling both sides of the API share (`held`). It imports neither
`bot` nor `generator`."""
