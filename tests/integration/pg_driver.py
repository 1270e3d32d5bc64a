#!/usr/bin/python3
# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one pg_ha.postgresql.Postgresql method as user postgres, for the integration tests.

    runuser -u postgres -- /usr/bin/python3 pg_driver.py '{"settings": {...}, "op": "start",
                                                            "args": [...], "kwargs": {...}}'

Logs go to stderr; the last stdout line is {"result": ...} (or {"error": ...}, exit 1).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
from typing import Any

from pg_ha.config.settings import Auth, PostgresqlSettings
from pg_ha.postgresql import Postgresql, format_lsn, parse_lsn

TUPLE_FIELDS = ("pg_hba", "create_replica_methods", "basebackup", "initdb")
AUTH_FIELDS = ("superuser", "replication", "rewind")


def make_settings(raw: dict[str, Any]) -> PostgresqlSettings:
    values = dict(raw)
    for name in AUTH_FIELDS:
        if isinstance(values.get(name), dict):
            values[name] = Auth(**values[name])
    for name in TUPLE_FIELDS:
        if name in values:
            values[name] = tuple(values[name])
    return PostgresqlSettings(**values)


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "role"):
            out["role"] = value.role
        return out
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cmd = json.loads(sys.argv[1])
    pg = Postgresql(make_settings(cmd["settings"]))
    op = cmd["op"]
    args, kwargs = cmd.get("args", []), cmd.get("kwargs", {})
    try:
        if op == "update_settings":
            result: Any = pg.update_settings(make_settings(args[0]))
        elif op == "sync_replication_slots":
            result = pg.sync_replication_slots(set(args[0]))
        elif op == "lsn_roundtrip":
            result = format_lsn(parse_lsn(args[0]))
        else:
            result = getattr(pg, op)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        logging.exception("driver: %s failed", op)
        print(json.dumps({"error": repr(exc)}))
        return 1
    finally:
        pg.close()
    print(json.dumps({"result": jsonable(result)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
