"""The autoscaler's discrete-event simulator (``modelplane sim``)."""
