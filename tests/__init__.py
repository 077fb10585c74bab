"""Tests: unit (fake clock), integration (real local servers), shared data.

Regular packages, so every test module has one dotted name (``tests.unit.test_x``) for
pytest, for mypy and for imports between test modules.
"""
