"""The operator's tools: the CLI, the dev stack, the audit readers (history replay, timeline, audit rows),
the sample alerts and the codec server.

Nothing that runs an incident imports from here: activities, workflows and workers use the core modules of
`stanch` (settings, policy, database, redaction, codec, telemetry), and `tests/test_layers.py` fails when
one of them imports a tool. That keeps a worker's image free of what only a person at a terminal needs.
"""
