"""Replay a short slice of a request trace against real llama.cpp replicas and against
``tierserve sim`` with the fitted CPU profile, and compare what each reports
(``python -m tierserve.dev.replay --help``; docs/engine.md, "The simulator against the
real engine").
"""
