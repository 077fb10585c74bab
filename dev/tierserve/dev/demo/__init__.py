"""The demo that `make demo` runs: a local stack serving real models through routes, autoscaling
under a burst, with a live view and an end-of-run report."""
