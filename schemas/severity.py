from enum import StrEnum


class Severity(StrEnum):
    """Incident priority. P0 is answered in minutes, P3 in the next sprint."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
