"""Official alerts: their lifecycle across messages, and which were active when."""
