#!/usr/bin/env bash
# scripts/postgres.sh starts a throwaway PostgreSQL for Conveyor's tests and
# prints the line that points the tests at it:
#
#	eval "$(bash scripts/postgres.sh)"   # sets CONVEYOR_TEST_POSTGRES
#	go test -race ./store/postgres/
#	bash scripts/postgres.sh stop        # when you are done
#
# It installs PostgreSQL from Debian's packages when no server binary is found
# (root or password-less sudo needed for that step only), then runs a cluster
# of its own in $CONVEYOR_PG_DIR (default /tmp/conveyor-pg) on
# 127.0.0.1:$CONVEYOR_PG_PORT (default 54329), never touching the system's
# cluster. The server runs as the postgres user when the script runs as root,
# else as the caller. It creates the role and database "conveyor" with a random
# password kept in $CONVEYOR_PG_DIR/password. Every step is skipped when
# already done, so a second run takes well under a second.
#
# The cluster is for tests only: it runs with fsync off, and a crash of the
# machine may lose or corrupt it (delete the directory and run again).
#
# Only the export line goes to stdout; progress and errors go to stderr, and
# any failure exits non-zero.
set -euo pipefail

dir=${CONVEYOR_PG_DIR:-/tmp/conveyor-pg}
port=${CONVEYOR_PG_PORT:-54329}
data=$dir/data

log() { echo "postgres.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# bindir prints the bin directory of the newest installed PostgreSQL, or
# nothing.
bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [[ -n $d && -x $d/postgres ]]; then
		echo "$d"
	fi
}

# as_root runs a command as root, through sudo when needed.
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		die "installing PostgreSQL needs root: run 'apt-get install -y postgresql' as root, then run this again"
	fi
}

# install installs Debian's postgresql package unless a server is installed.
install() {
	[[ -n $(bindir) ]] && return
	command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is missing: install PostgreSQL by hand"
	log "installing PostgreSQL from Debian's packages..."
	as_root apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
	[[ -n $(bindir) ]] || die "apt-get installed postgresql but no server binary is in /usr/lib/postgresql/*/bin"
}

# as_server runs a command as the user that owns the cluster: postgres when
# the script runs as root, else the caller.
as_server() {
	if [[ $EUID -eq 0 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# init creates the directory, the password and the cluster, unless they exist.
init() {
	mkdir -p "$dir"
	if [[ $EUID -eq 0 ]]; then
		chown postgres: "$dir"
	fi
	[[ -O $dir || $EUID -eq 0 ]] || die "$dir belongs to another user: set CONVEYOR_PG_DIR"
	chmod 700 "$dir"
	if [[ ! -s $dir/password ]]; then
		(umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/password")
	fi
	[[ -f $data/PG_VERSION ]] && return
	log "creating a cluster in $data..."
	as_server "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C --no-sync \
		--auth-local=trust --auth-host=scram-sha-256 >&2
	# Tuned for throwaway test data, not for durability.
	cat >>"$data/postgresql.conf" <<-EOF

		# scripts/postgres.sh: a test cluster, fast rather than durable.
		max_connections = 200
		fsync = off
		synchronous_commit = off
		full_page_writes = off
	EOF
}

# running reports whether the cluster accepts connections on 127.0.0.1:port.
running() {
	as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 &&
		"$bin/pg_isready" -q -h 127.0.0.1 -p "$port"
}

# start starts the cluster listening on loopback only, restarting it when it
# runs on another port.
start() {
	running && return
	if as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		log "the cluster runs but not on 127.0.0.1:$port; restarting it"
		as_server "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
	fi
	log "starting PostgreSQL on 127.0.0.1:$port..."
	as_server "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >&2 ||
		die "PostgreSQL did not start; its log is $dir/server.log: $(tail -n 5 "$dir/server.log" 2>/dev/null)"
}

# provision creates (or updates) the conveyor role and database.
provision() {
	local pw
	pw=$(cat "$dir/password")
	# The password travels on stdin, never on a command line.
	as_server "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt >&2 <<-EOF
		SELECT 'CREATE ROLE conveyor LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'conveyor')\gexec
		ALTER ROLE conveyor PASSWORD '$pw';
		SELECT 'CREATE DATABASE conveyor OWNER conveyor' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'conveyor')\gexec
	EOF
	echo "export CONVEYOR_TEST_POSTGRES='postgres://conveyor:$pw@127.0.0.1:$port/conveyor?sslmode=disable'"
}

case ${1:-start} in
start)
	install
	bin=$(bindir)
	init
	start
	provision
	;;
stop)
	bin=$(bindir)
	if [[ -n $bin && -f $data/PG_VERSION ]]; then
		as_server "$bin/pg_ctl" -D "$data" -m fast -w stop >&2 || true
	fi
	;;
*)
	die "usage: bash scripts/postgres.sh [start|stop]"
	;;
esac
