#!/bin/sh
# Temporal's two databases on temporal-postgres, created if missing and brought up to the schema of this
# admin-tools image's server version: what temporalio/auto-setup did on every start (each step is a no-op
# when already done). Run by the `temporal-schema` one-shot in docker-compose.yml, before the server.
set -eu

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" "$@"
}

until nc -z "$SQL_HOST" "$SQL_PORT"; do
  echo "waiting for $SQL_HOST:$SQL_PORT"
  sleep 1
done

sql --db temporal create
sql --db temporal setup-schema -v 0.0
sql --db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned

sql --db temporal_visibility create
sql --db temporal_visibility setup-schema -v 0.0
sql --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned

echo "temporal schema: up to date"
