"""Storage backends implementing the protocols of ``customerkit.ports``."""
