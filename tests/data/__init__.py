"""Data shared by the test layers (bad manifests and the cases built from them)."""
