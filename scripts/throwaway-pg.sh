# Sourced by scripts/test.sh: when CLUSTERCTL_TEST_PG_URL is not set and PostgreSQL's server
# binaries are installed, start a PostgreSQL cluster of its own (initdb and pg_ctl in a temporary
# directory, a free port on 127.0.0.1, durability off: it lives for one run) and remove it when
# the shell exits. Without the binaries it does nothing, and the PostgreSQL tests skip (or fail
# under CI=true, where .ci/run has installed PostgreSQL).
if [[ -z "${CLUSTERCTL_TEST_PG_URL:-}" ]]; then
    pg_bin="$(pg_config --bindir 2>/dev/null || true)"
    if [[ ! -x "$pg_bin/initdb" ]]; then
        pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
    if [[ -n "$pg_bin" && -x "$pg_bin/initdb" ]]; then
        pg_dir="$(mktemp -d /tmp/clusterctl-test-pg.XXXXXX)"
        pg_port="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        pg_as=()  # PostgreSQL refuses to run as root: as its own account where we are root
        if [[ $(id -u) == 0 ]]; then
            id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
            chown postgres "$pg_dir"
            pg_as=(runuser -u postgres --)
        fi
        "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync \
            >"$pg_dir/initdb.log" 2>&1 || { cat "$pg_dir/initdb.log"; exit 1; }
        "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
            -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null || { cat "$pg_dir/server.log"; exit 1; }
        trap '"${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$pg_dir"' EXIT
        export CLUSTERCTL_TEST_PG_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
        echo "PostgreSQL for the tests: $("$pg_bin/postgres" --version), port $pg_port (removed after)"
    fi
fi
