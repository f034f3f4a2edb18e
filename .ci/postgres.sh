# shellcheck shell=bash
# A throwaway PostgreSQL cluster for the storage tests.
#
# Meant to be sourced, not run: `source .ci/postgres.sh` from bash (as
# .ci/run does) starts a private cluster and exports into the caller
#   CHORUS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:<port>/chorus_test
#   CHORUS_REQUIRE_POSTGRES=1
# so `cargo test -p chorus-storage` runs its PostgreSQL half and fails
# rather than skipping if something went wrong. An EXIT trap (appended to
# any the caller has) stops the cluster and deletes its files when the
# sourcing shell exits.
#
# Works on a fresh Debian as root with nothing installed (installs Debian's
# `postgresql`), or as an ordinary user with PostgreSQL already installed.
# The server listens on 127.0.0.1 only, with trust authentication: fine for
# a cluster that lives as long as one CI run and holds only test data.
#
# Everything here is a function with a _chorus_pg_ prefix so that sourcing
# defines no loose variables in the caller and never calls `exit` on it.

# Prints the directory holding initdb, pg_ctl and pg_isready, or nothing.
_chorus_pg_bindir() {
    local initdb dir
    if initdb=$(command -v initdb); then
        # /usr/local/bin/initdb may be a symlink into the real bin directory,
        # which is where pg_isready and createdb live too.
        dirname "$(readlink -f "$initdb")"
        return 0
    fi
    # Debian keeps the server binaries off PATH, one directory per major
    # version; take the newest.
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [[ -x $dir/initdb ]]; then
        printf '%s\n' "$dir"
    fi
    # Not found is an empty answer, not a failure that `set -e` in the
    # caller would turn into an exit.
    return 0
}

_chorus_pg_install() {
    if [[ $EUID -ne 0 ]]; then
        echo "postgres.sh: PostgreSQL is not installed and installing it needs root" >&2
        return 1
    fi
    echo "== installing PostgreSQL (apt-get)" >&2
    # The package would start Debian's default cluster on port 5432 through
    # invoke-rc.d; a policy-rc.d that says "no" (exit 101) prevents that, so
    # the only server this script leaves running is the one it stops. Docker
    # images usually ship one already; then it is left alone.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            postgresql >/dev/null || status=$?
    if [[ $own_policy -eq 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    return "$status"
}

# Prints the first TCP port from 55432 on that nothing on 127.0.0.1 accepts.
_chorus_pg_free_port() {
    local port
    for ((port = 55432; port < 55532; port++)); do
        # A successful connect means the port is taken.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    echo "postgres.sh: no free port in 55432-55531" >&2
    return 1
}

# Runs a command as the cluster's owner: `postgres` when we are root, since
# initdb and postgres refuse to run as root; ourselves otherwise. From inside
# the cluster directory, because the owner may not be allowed into the
# caller's working directory.
_chorus_pg_as_owner() {
    local dir=$1
    shift
    if [[ $EUID -eq 0 ]]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

# The EXIT trap's body: stop the cluster without a shutdown checkpoint (its
# data is thrown away next) and delete it.
_chorus_pg_stop() {
    local bindir=$1 dir=$2
    if [[ -f $dir/data/postmaster.pid ]]; then
        _chorus_pg_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf -- "$dir"
}

# Adds a command to the shell's EXIT trap, after whatever is there already.
_chorus_pg_append_exit_trap() {
    local new=$1 old=""
    # `trap -p EXIT` prints `trap -- '<command>' EXIT`, quoted for reuse;
    # `set --` inside this function splits it without touching the caller's
    # positional parameters.
    eval "set -- $(trap -p EXIT)"
    if [[ $# -ge 3 ]]; then
        old=$3
    fi
    # shellcheck disable=SC2064 # expanded now on purpose: the paths are fixed
    trap -- "${old:+$old; }$new" EXIT
}

_chorus_pg_main() {
    local bindir dir port
    bindir=$(_chorus_pg_bindir)
    if [[ -z $bindir ]]; then
        _chorus_pg_install || return 1
        bindir=$(_chorus_pg_bindir)
        if [[ -z $bindir ]]; then
            echo "postgres.sh: installed postgresql but found no initdb" >&2
            return 1
        fi
    fi
    if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        echo "postgres.sh: running as root needs a 'postgres' user to own the cluster" >&2
        return 1
    fi

    dir=$(mktemp -d "${TMPDIR:-/tmp}/chorus-pg.XXXXXX") || return 1
    # Registered before anything can fail, so a half-started cluster is
    # cleaned up too.
    _chorus_pg_append_exit_trap "_chorus_pg_stop $(printf '%q %q' "$bindir" "$dir")"
    if [[ $EUID -eq 0 ]]; then
        chown postgres: "$dir"
    fi

    # A non-C default collation (ICU en-US where initdb supports it) so the
    # tests prove the schema's byte-wise ordering does not depend on the
    # cluster's locale.
    local locale_args=(--locale=C.UTF-8) help
    # Captured first: `initdb --help | grep -q` can die of SIGPIPE, which
    # the caller's pipefail would read as "not supported".
    help=$("$bindir/initdb" --help 2>/dev/null) || true
    if [[ $help == *--locale-provider* ]]; then
        locale_args=(--locale=C.UTF-8 --locale-provider=icu --icu-locale=en-US)
    fi
    if ! _chorus_pg_as_owner "$dir" "$bindir/initdb" -D "$dir/data" -U postgres \
        --auth=trust --encoding=UTF8 "${locale_args[@]}" --no-sync \
        >"$dir/initdb.log" 2>&1; then
        echo "postgres.sh: initdb failed:" >&2
        cat "$dir/initdb.log" >&2
        return 1
    fi

    port=$(_chorus_pg_free_port) || return 1
    # Loopback only, unix sockets in the private directory rather than
    # /var/run/postgresql, and no fsync: the data dies with the run.
    if ! _chorus_pg_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c fsync=off" \
        -w -t 60 start >/dev/null; then
        echo "postgres.sh: the server did not start:" >&2
        cat "$dir/server.log" >&2
        return 1
    fi

    local tries
    for ((tries = 0; tries < 60; tries++)); do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            break
        fi
        sleep 0.5
    done
    if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        echo "postgres.sh: the server does not answer on 127.0.0.1:$port:" >&2
        cat "$dir/server.log" >&2
        return 1
    fi

    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres chorus_test || return 1

    export CHORUS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/chorus_test"
    export CHORUS_REQUIRE_POSTGRES=1
    echo "== $("$bindir/postgres" --version) on 127.0.0.1:$port, data in $dir" >&2
}

_chorus_pg_main
