"""HTTP API (Recall-compatible)."""
