#!/bin/sh
# Run by deploy/compose.yaml in temporalio/admin-tools: creates Temporal's databases on the
# shared PostgreSQL and applies its schema versions (the steps of temporalio's own compose
# setup). Safe to run again: existing databases and applied versions are left as they are.
set -eu
tool() {
    temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u postgres "$@"
}
schema=/etc/temporal/schema/postgresql/v12
for database in temporal temporal_visibility; do
    case "$database" in
        temporal) versions="$schema/temporal/versioned" ;;
        *) versions="$schema/visibility/versioned" ;;
    esac
    tool --db "$database" create || echo "database $database is there already"
    tool --db "$database" setup-schema -v 0.0
    tool --db "$database" update-schema -d "$versions"
done
echo "Temporal schema is up to date"
