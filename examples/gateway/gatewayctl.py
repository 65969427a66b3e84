#!/usr/bin/env python3
"""The example gateway's control script: what Stanch's `command` adapter runs for the gateway's reads and its
small effects (the restart itself is `safe-restart`'s alone). Every answer is one JSON object on stdout in
the shape of Stanch's gateway models (schemas/gateway.py).

    gatewayctl.py status GATEWAY         GatewayStatus: memory of the process supervisord runs
                                         (/proc/<pid>/status) against the high watermark, health from
                                         its own endpoint, restarts
    gatewayctl.py health GATEWAY         the same, as the check a restart is confirmed by
    gatewayctl.py clean-runs GATEWAY     Cleanup: remove the dead scheduled runs and their cron sessions
    gatewayctl.py clean-files GATEWAY    Cleanup: remove the `.deleted` / `.corrupt` files
    gatewayctl.py collect-logs GATEWAY   ServiceLogs: the gateway's last stderr lines, from supervisord
    gatewayctl.py collect-state GATEWAY  StateSnapshot: the status plus sessions, scheduled runs, reviews
    gatewayctl.py check                  one line: supervisord and the gateway's process state

The effects (clean-*, collect-*) carry out each `STANCH_IDEMPOTENCY_KEY` once: a key already carried out is
answered with its first result (`"replayed": true`) and nothing is done again (`<data>/gatewayctl-keys.json`,
under an exclusive lock, so a retry waits for a run still in flight). GATEWAY must be this host's gateway
(`GATEWAY_NAME`), or the call is refused. The watermark is `GATEWAY_HIGH_WATERMARK_MB` (or
`--high-watermark-mb`); where the gateway is, gatewaylib.py.

Exit 0 done; 3 refused (another gateway, an unknown command, no watermark, a key used for another command);
1 failed (supervisord unreachable: worth a retry). Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from gatewaylib import (
    DONE,
    FAILED,
    REFUSED,
    Failed,
    Parser,
    Place,
    Refused,
    append_line,
    clean_dead_runs,
    clean_junk_files,
    exclusive,
    health,
    read_json,
    restart_times,
    rss_mb,
    running_pid,
    supervisor,
    write_json,
)

LOG_LINES = 50
LOG_BYTES = 16_000


def status(place: Place, watermark_mb: float) -> dict[str, Any]:
    """Read from the process itself: its pid from supervisord, its memory from the kernel, its health from
    its own endpoint. Running but not answering as that pid is a zombie."""
    if watermark_mb <= 0:
        raise Refused("the high watermark is not set (GATEWAY_HIGH_WATERMARK_MB or --high-watermark-mb)")
    control = supervisor(place)
    pid = running_pid(control, place.program)
    state = control.getProcessInfo(place.program)["statename"]
    answer = health(place.port) if pid else None
    healthy = answer is not None and answer.get("status") == "ok" and answer.get("pid") == pid
    memory_mb = rss_mb(pid) if pid else 0.0
    return {
        "name": place.name,
        "memory_mb": memory_mb,
        "high_watermark_mb": watermark_mb,
        "memory_ratio": round(memory_mb / watermark_mb, 3),
        "healthy": healthy,
        "zombie": state == "RUNNING" and not healthy,
        "restarts": len(restart_times(place.data)),
        "chain_frozen": False,
        "spawns_blocked": False,
    }


def clean_runs(place: Place, watermark_mb: float) -> dict[str, Any]:
    removed = clean_dead_runs(place.data)
    return {
        "name": place.name,
        "removed": len(removed),
        "removed_items": removed,
        "remaining": len(list((place.data / "runs").glob("*.json"))),
    }


def clean_files(place: Place, watermark_mb: float) -> dict[str, Any]:
    removed = clean_junk_files(place.data)
    return {
        "name": place.name,
        "removed": len(removed),
        "removed_items": removed,
        "remaining": sum(1 for path in place.data.glob("*.jsonl*") if path.is_file()),
    }


def collect_logs(place: Place, watermark_mb: float) -> dict[str, Any]:
    control = supervisor(place)
    tail = control.tailProcessStderrLog(place.program, 0, LOG_BYTES)[0]
    return {"name": place.name, "lines": tail.strip().splitlines()[-LOG_LINES:]}


def collect_state(place: Place, watermark_mb: float) -> dict[str, Any]:
    snapshot = status(place, watermark_mb)
    answer = health(place.port) if snapshot["healthy"] else None
    sessions = read_json(place.data / "sessions.json", {"sessions": []})["sessions"]
    return {
        **snapshot,
        "sessions": len(sessions),
        "live_sessions": int(answer["cached_sessions"]) if answer else 0,
        "scheduled_runs": len(list((place.data / "runs").glob("*.json"))),
        "pending_reviews": 0,
    }


READS: dict[str, Callable[[Place, float], dict[str, Any]]] = {"status": status, "health": status}
EFFECTS: dict[str, Callable[[Place, float], dict[str, Any]]] = {
    "clean-runs": clean_runs,
    "clean-files": clean_files,
    "collect-logs": collect_logs,
    "collect-state": collect_state,
}


def once_per_key(place: Place, command: str, key: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Carry `command` out once for `key`; a key carried out before is answered with its first result."""
    if not key:
        raise Refused(f"{command} is an effect: it needs STANCH_IDEMPOTENCY_KEY")
    log = place.data / "gatewayctl.log"
    with exclusive(place.data / ".gatewayctl.lock"):
        keys_file = place.data / "gatewayctl-keys.json"
        keys: dict[str, Any] = read_json(keys_file, {})
        entry = keys.get(key)
        if entry is not None:
            if entry["command"] != command:
                raise Refused(f"key {key} was used for {entry['command']}, not {command}")
            append_line(log, f"key {key}: {command} already done, answering its first result")
            return {**entry["result"], "replayed": True}
        result = {**run(), "replayed": False}
        keys[key] = {"command": command, "result": result}
        write_json(keys_file, keys)
        append_line(log, f"key {key}: {command} done")
        return result


def check(place: Place) -> str:
    control = supervisor(place)
    info = control.getProcessInfo(place.program)
    state = control.getState()["statename"]
    return (
        f"supervisord {state}, {place.name} ({place.program}) {info['statename']}, pid {info['pid'] or '-'}"
    )


def main(argv: list[str]) -> int:
    parser = Parser(prog="gatewayctl", description="Read and tidy the example gateway.")
    parser.add_argument("command", choices=[*READS, *EFFECTS, "check"])
    parser.add_argument("gateway", nargs="?", help="the gateway meant; refused unless it is this host's")
    parser.add_argument(
        "--high-watermark-mb", type=float, default=float(os.environ.get("GATEWAY_HIGH_WATERMARK_MB") or 0)
    )
    args = parser.parse_args(argv)
    try:
        place = Place.from_environment()
        if args.command == "check":
            print(check(place))
            return DONE
        if args.gateway is None:
            raise Refused(f"{args.command} needs the gateway's name")
        place.is_named(args.gateway)
        if args.command in READS:
            result = READS[args.command](place, args.high_watermark_mb)
        else:
            effect = EFFECTS[args.command]
            key = os.environ.get("STANCH_IDEMPOTENCY_KEY", "")
            result = once_per_key(place, args.command, key, lambda: effect(place, args.high_watermark_mb))
    except Refused as refusal:
        print(f"gatewayctl {args.command} refused: {refusal}", file=sys.stderr)
        return REFUSED
    except Failed as failure:
        print(f"gatewayctl {args.command} failed: {failure}", file=sys.stderr)
        return FAILED
    print(json.dumps(result))
    return DONE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
