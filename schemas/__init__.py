"""Pydantic models shared by the intake, the workflows, the activities and the CLI."""
