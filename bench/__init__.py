"""Keel's benchmark harness: ``python -m bench list | run SUITE | all | report``."""
