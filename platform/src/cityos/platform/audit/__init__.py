"""The append-only audit log: health-data reads and admin actions, who, when, from where."""
