"""Reference data shipped with customerkit (name tables used by matching and synthetic data)."""
