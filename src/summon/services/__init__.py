"""Use cases: one function per use case, called by the API, CLI, calendars and mail."""
