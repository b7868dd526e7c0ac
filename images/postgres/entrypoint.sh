#!/bin/bash
# Entry point of courier/postgres: the official image's contract, reduced to what the tests use.
set -euo pipefail
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
if [[ ${1:-} != postgres ]]; then exec "$@"; fi
if [[ ! -s $PGDATA/PG_VERSION ]]; then
	pw=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
	initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" -E UTF8 --no-locale \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pw"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
	echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
	# The temporary server listens on its socket only, like the official image's.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start
	if [[ $POSTGRES_DB != postgres ]]; then
		createdb -h /var/run/postgresql -U "$POSTGRES_USER" "$POSTGRES_DB"
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop
fi
shift
exec postgres -k /var/run/postgresql "$@"
