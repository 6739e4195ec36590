"""Keel's one-command demo: orchestrates the broker, the three apps and a landing page."""
