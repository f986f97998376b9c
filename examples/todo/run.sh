#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs examples/todo against a throwaway PostgreSQL and a throwaway Redis:
#
#     examples/todo/run.sh [todo flags...]        # e.g. --cache-ttl-ms 5000
#
# It builds nothing: it runs BUILD_DIR/examples/todo/todo (BUILD_DIR: build/
# of the repository by default; `make` or `cmake -S . -B build && cmake
# --build build` makes it, with libpq-dev, libhiredis-dev and libjansson-dev
# installed).  It starts PostgreSQL (initdb + pg_ctl in a temporary
# directory, on a free port of 127.0.0.1; as root it runs them as `nobody`,
# since PostgreSQL refuses root) and redis-server (a free port, no
# persistence), then the todo server on 127.0.0.1:${PORT:-8080} in the
# foreground.  Ctrl-C stops the server, and on every way out both databases
# are stopped and their directory removed.
#
# Environment: PORT (8080), BUILD_DIR (build), PG_BIN (the directory of
# initdb and pg_ctl; default: the newest /usr/lib/postgresql/*/bin, else
# PATH).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
todo=$build/examples/todo/todo
port=${PORT:-8080}

die() { echo "run.sh: $*" >&2; exit 1; }

[[ -x $todo ]] || die "$todo not found: build it first (cmake -S $root -B $build &&" \
    "cmake --build $build --target todo; it needs libpq-dev, libhiredis-dev, libjansson-dev)"
if [[ -z ${PG_BIN:-} ]]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n $PG_BIN ]] || PG_BIN=$(dirname "$(command -v initdb 2>/dev/null || echo /x/initdb)")
fi
[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || die "no initdb/pg_ctl (Debian: postgresql; or set PG_BIN)"
command -v redis-server >/dev/null || die "no redis-server (Debian: redis-server)"

# A port to listen on: below the kernel's range of ephemeral ports (those
# of outgoing connections, which a bind would collide with), and where
# nothing listens (bash's /dev/tcp: a refused connect).  Racy as any such
# choice: the servers below are started on another one if it was taken.
free_port() {
    local low=32768 p
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    ((low > 11024)) || low=32768
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % (low - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

dir=$(mktemp -d /tmp/corio-todo.XXXXXX)
as_pg=()
if [[ $(id -u) == 0 ]]; then
    as_pg=(runuser -u nobody --)
    chown nobody "$dir"
fi
redis_pid=
cleanup() {
    trap - EXIT INT TERM
    set +e
    if [[ -n $redis_pid ]]; then
        kill "$redis_pid" 2>/dev/null
        wait "$redis_pid" 2>/dev/null
    fi
    if [[ -f $dir/data/postmaster.pid ]]; then
        (cd "$dir" && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$dir"
    echo "run.sh: PostgreSQL and Redis stopped, $dir removed" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(
    cd "$dir" # as nobody, the caller's directory may be out of reach
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
        --no-sync >"$dir/initdb.log" 2>&1
) || die "initdb failed: $(cat "$dir/initdb.log")"
for attempt in 1 2 3; do
    pg_port=$(free_port)
    (cd "$dir" && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
        -t 60 -o "-h 127.0.0.1 -p $pg_port -k $dir -F" start >/dev/null 2>&1) && break
    ((attempt < 3)) || die "PostgreSQL did not start: $(tail -5 "$dir/postgres.log")"
done
echo "run.sh: PostgreSQL on 127.0.0.1:$pg_port, files in $dir" >&2

for attempt in 1 2 3; do
    redis_port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
        --dir "$dir" --logfile "$dir/redis.log" &
    redis_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break 2
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
    ((attempt < 3)) || die "redis-server did not start: $(tail -5 "$dir/redis.log")"
done
echo "run.sh: Redis on 127.0.0.1:$redis_port" >&2

cat >&2 <<EOF

Try, in another terminal:

    curl -i -d '{"title":"buy milk"}' http://127.0.0.1:$port/todos
    curl -i http://127.0.0.1:$port/todos/1          # X-Cache: miss, then hit
    curl -i http://127.0.0.1:$port/todos
    curl -i -X PATCH -d '{"done":true}' http://127.0.0.1:$port/todos/1
    curl -i -X DELETE http://127.0.0.1:$port/todos/1
    psql -h 127.0.0.1 -p $pg_port -U postgres -c 'table todo_log'
    redis-cli -p $redis_port keys 'todos:*'

Ctrl-C stops everything.

EOF
status=0
"$todo" --host 127.0.0.1 --port "$port" \
    --db "postgresql://postgres@127.0.0.1:$pg_port/postgres" \
    --redis "127.0.0.1:$redis_port" "$@" || status=$?
exit "$status"
