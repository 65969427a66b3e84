"""One `APIRouter` per fake system of the sandbox, plus its test controls (`control`, `scenarios`)."""
