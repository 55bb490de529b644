"""Plain domain values shared by every part of cityos (no framework imports)."""
