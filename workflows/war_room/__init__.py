"""The war room runbook (seed 001), a package: `workflow.py` is the procedure, the rest is pure.

- `workflow.py`    the `war_room` workflow: its `run` reads as the seed's steps
- `assembly.py`    who is called in and how often they hear, by severity (pure)
- `triage.py`      what the three triage looks found, as the brief says it (pure)
- `containment.py` which mitigations are offered, in which order (pure)
- `postmortem.py`  the post-mortem draft from the room's own timeline (pure)

Only the workflow is imported here: the workflow sandbox re-imports this package, and the pure modules
must reach it through the workflow's `imports_passed_through` block (one copy of each schema class).
"""

from workflows.war_room.workflow import WarRoom

__all__ = ["WarRoom"]
