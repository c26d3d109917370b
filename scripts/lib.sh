# Shared by scripts/run and scripts/test: install what is missing (idempotent, quiet when
# nothing is), and make sure the local PostgreSQL is up. Sourced, not run.
# Targets Debian 12 with Rust stable and PostgreSQL on 127.0.0.1:5432; run as root or
# with sudo available.

export DEBIAN_FRONTEND=noninteractive

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: installs the packages given, with one `apt-get update` first.
apt_install() {
  [ $# -gt 0 ] || return 0
  echo "pgsidecar: installing $*" >&2
  as_root apt-get update -qq
  as_root apt-get install -y -qq "$@" >/dev/null
}

# What `cargo build` needs beyond Rust itself.
build_deps() {
  local missing=()
  # pg_query (query fingerprints) builds libpg_query: a C compiler, and bindgen, which
  # loads libclang at build time. Without libclang-dev the build script panics.
  command -v cc >/dev/null || missing+=(build-essential)
  dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
  command -v cargo >/dev/null || {
    echo "pgsidecar: cargo not found; install Rust stable (https://rustup.rs) first" >&2
    return 1
  }
  apt_install "${missing[@]}"
}

# What the tests need besides the build: PostgreSQL client and server binaries (throwaway
# clusters), pgbench, the Python drivers, Node.js for node-postgres.
test_deps() {
  local missing=()
  command -v psql >/dev/null || missing+=(postgresql-client)
  command -v pg_config >/dev/null || missing+=(libpq-dev)
  [ -x "$(pg_config --bindir 2>/dev/null)/initdb" ] || missing+=(postgresql-15)
  command -v runuser >/dev/null || missing+=(util-linux)
  command -v pgbench >/dev/null || missing+=(postgresql-contrib)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  # Deploy checks (tests/it/deploy): a real Prometheus and promtool.
  command -v prometheus >/dev/null || missing+=(prometheus)
  # The web console test (tests/e2e/console_check.py) drives Debian's chromium.
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  # The index advisor's tests (tests/it/advisor) cost candidates with HypoPG.
  [ -f "$(pg_config --sharedir 2>/dev/null)/extension/hypopg.control" ] || missing+=(postgresql-15-hypopg)
  apt_install "${missing[@]}"
  # psycopg 3 and asyncpg from PyPI (newer than Debian's). Debian marks its Python as
  # externally managed; these are test-only packages, so install them system-wide anyway.
  local pip=(python3 -m pip install -q --break-system-packages)
  python3 -c 'import psycopg' 2>/dev/null || as_root "${pip[@]}" "psycopg[binary]>=3.1"
  python3 -c 'import asyncpg' 2>/dev/null || as_root "${pip[@]}" asyncpg
  # The deploy checks read YAML; the web console test drives chromium with Selenium.
  python3 -c 'import yaml' 2>/dev/null || as_root "${pip[@]}" pyyaml
  python3 -c 'import selenium' 2>/dev/null || as_root "${pip[@]}" selenium
}

# Starts the local cluster when nothing answers on 127.0.0.1:5432.
ensure_postgres() {
  command -v pg_isready >/dev/null || apt_install postgresql-client
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    if [ -z "$version" ]; then
      echo "pgsidecar: no PostgreSQL on 127.0.0.1:5432 and no local cluster to start" >&2
      return 1
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432
}
