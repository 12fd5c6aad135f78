#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, as a
# non-root user, listening on 127.0.0.1 at a free port. Not for production data: it does
# not force commits to disk (see the settings below).
#
#   scripts/pg-cluster.sh start DIR   prints the admin URL (postgres://...) on stdout
#   scripts/pg-cluster.sh stop DIR
#   scripts/pg-cluster.sh crash DIR     stops it at once (pg_ctl stop -m immediate), as a crash
#   scripts/pg-cluster.sh restart DIR   starts it again on the same port
#
# With PG_CLUSTER_TLS=1, `start` makes a certificate authority (DIR/ca.crt) and a certificate
# for 127.0.0.1 signed by it, and the cluster accepts TCP connections over TLS only.
#
# Installs Debian's postgresql package first when no server is found.
set -euo pipefail

action=${1:?usage: pg-cluster.sh start|stop DIR}
dir=${2:?usage: pg-cluster.sh start|stop DIR}

bindir() {
    local found
    # The server's programs, not only the client's (psql alone may be installed).
    found=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z "$found" ]]; then
        echo "installing PostgreSQL (Debian package postgresql)" >&2
        if [[ $(id -u) -eq 0 ]]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
                || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
        else
            sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
        fi
        found=$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
    fi
    dirname "$found"
}

# Runs a server program as the cluster's owner: the invoking user, or `postgres` for root
# (the server refuses to run as root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$action" in
start)
    bin=$(bindir)
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    port=$(free_port)
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 256MB
# A test cluster: commits are written to the operating system before they are acknowledged
# (so a killed server loses nothing acknowledged), but not forced to disk, which only an
# operating-system crash would need.
fsync = off
full_page_writes = off
CONF
    if [[ "${PG_CLUSTER_TLS:-}" == 1 ]]; then
        # A certificate authority of the test's own (DIR/ca.crt), and the server's certificate
        # for 127.0.0.1 signed by it.
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=stackbill test CA" \
            -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$dir/data/server.key" -out "$dir/server.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/server.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 1 -extfile "$dir/server.ext" -out "$dir/data/server.crt" 2>/dev/null
        chmod 600 "$dir/data/server.key"
        if [[ $(id -u) -eq 0 ]]; then chown postgres "$dir/data/server.key" "$dir/data/server.crt"; fi
        echo "ssl = on" >>"$dir/data/postgresql.conf"
        printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n' \
            >"$dir/data/pg_hba.conf"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
crash)
    bin=$(bindir)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2
    ;;
restart)
    bin=$(bindir)
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2
    ;;
stop)
    bin=$(bindir)
    if [[ -d "$dir/data" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg-cluster.sh start|stop|crash|restart DIR" >&2
    exit 2
    ;;
esac
