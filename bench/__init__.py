"""Benchmarks of surveybot, each against a bare baseline measured in the same run: ``python -m bench``."""
