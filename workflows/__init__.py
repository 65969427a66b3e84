"""Runbooks: one workflow per file, each built from the shared steps in `workflows.steps`."""
