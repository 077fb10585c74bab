"""The tiering benchmark (``tierserve-dev bench tiers``): questions, setups, runs, calibration."""
