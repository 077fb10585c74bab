"""Fast unit tests (fakes, fake clock)."""
