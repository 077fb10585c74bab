"""The autoscaler's discrete-event simulator (``tierserve sim``)."""
