#!/bin/sh
# First start of the audit database only (docker-entrypoint-initdb.d): the insert-only role the worker
# logs in as, with its own password. `stanch migrate` then creates the tables and grants (stanch.db).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_password="$AUDIT_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE stanch_app LOGIN PASSWORD :'app_password';
SQL
