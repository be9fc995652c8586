#!/usr/bin/env bash
# Migrate a fresh database with `portal migrate` and print its schema and the
# rows the migrations write (the catalogue), for comparing two sets of
# migrations (see docs/architecture.md, "Migrations").
#
#   scripts/schema_dump.sh sqlite   > before.sqlite.sql
#   scripts/schema_dump.sh postgres > before.postgres.sql   # PG_URL, default postgresql://postgres@127.0.0.1:5432
#
# Piccolo's own bookkeeping (the `migration` table's rows) is left out: its
# IDs are what a squash changes.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:?usage: schema_dump.sh sqlite|postgres}
portal=${PORTAL:-.venv/bin/portal}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case "$engine" in
sqlite)
    file="$work/schema.sqlite"
    DATABASE_URL="sqlite:///$file" "$portal" migrate >&2
    echo "-- sqlite_master, sorted by type and name"
    sqlite3 "$file" "SELECT type || ' ' || name || ' ON ' || tbl_name || char(10) || coalesce(sql, '(automatic)') || ';' FROM sqlite_master ORDER BY type, name"
    echo "-- product rows"
    sqlite3 "$file" "SELECT * FROM product ORDER BY id"
    echo "-- migration table columns"
    sqlite3 "$file" "PRAGMA table_info(migration)"
    ;;
postgres)
    pg=${PG_URL:-postgresql://postgres@127.0.0.1:5432}
    name="schema_dump_$$_$RANDOM"
    psql -q "$pg/postgres" -c "CREATE DATABASE $name" >&2
    trap 'psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $name" >&2; rm -rf "$work"' EXIT
    DATABASE_URL="$pg/$name" "$portal" migrate >&2
    # Sequences' current values are data, not schema; pg_dump -s prints no setval.
    # \restrict carries a random key per dump; the version line names the tool.
    pg_dump -s --no-owner "$pg/$name" | grep -Ev '^(\\(un)?restrict |-- Dumped by pg_dump version)'
    echo "-- product rows"
    psql -X -A -t "$pg/$name" -c "SELECT * FROM product ORDER BY id"
    echo "-- sequence positions"
    psql -X -A -t "$pg/$name" -c "SELECT sequencename, last_value FROM pg_sequences WHERE sequencename <> 'migration_id_seq' ORDER BY 1"
    ;;
*)
    echo "schema_dump.sh: engine is sqlite or postgres, not $engine" >&2
    exit 2
    ;;
esac
