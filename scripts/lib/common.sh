# Shared by scripts/test.sh and scripts/demo.sh: bring up what the local stack needs.
# Everything is installed inside the repository (.venv) or target/, never elsewhere.

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

# PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth); start the cluster if it is down,
# and stop with the fix when the postgres user needs a password.
ensure_postgres() {
    start_postgres || return 1
    # A running server that asks for a password would otherwise fail later, less clearly.
    if command -v psql >/dev/null && ! psql -w -q -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
        echo "PostgreSQL on 127.0.0.1:5432 does not let the postgres user in without a password; the demo and the tests need trust authentication for it (pg_hba.conf: host all postgres 127.0.0.1/32 trust, then reload), see README" >&2
        return 1
    fi
}

# Starts the installed cluster unless something already answers on 127.0.0.1:5432.
start_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        echo "PostgreSQL is not running on 127.0.0.1:5432 and no cluster is installed (apt-get install postgresql)" >&2
        return 1
    fi
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return 0
        sleep 0.5
    done
    echo "PostgreSQL did not become ready on 127.0.0.1:5432" >&2
    return 1
}

# A venv at $1 holding the pinned packages of requirements file $2, reinstalled only when
# that file changes.
ensure_venv_at() {
    local venv="$1" requirements="$2" stamp="$1/.requirements.sha256" want
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    log "installing Python tools into ${venv##*/} (${requirements#"$(repo_root)"/})"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
}

# The pinned Python tools (moto_server, pytest, python-hcl2, ...) in .venv.
ensure_venv() { ensure_venv_at "$1/.venv" "$1/requirements.txt"; }

# checkov in a venv of its own: its pins (packaging<24, its own hcl2 package) clash with
# pytest's and python-hcl2's.
ensure_checkov_venv() { ensure_venv_at "$1/.venv-checkov" "$1/deploy/requirements-checkov.txt"; }
