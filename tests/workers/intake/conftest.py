"""The intake tests run on the dev server (`dev_env`, `dev_stanch` in tests/conftest.py): the kind of
server the intake talks to, with its visibility store."""
