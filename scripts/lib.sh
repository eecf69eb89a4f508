# shellcheck shell=bash
# Shared by the scripts in this directory (sourced, not run): messages, the
# wasm target, the system packages the tests need, and guest-workspace builds.

# The repository root, whatever the caller's working directory.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -t 2 ]; then
  say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
else
  say() { printf '==> %s\n' "$*" >&2; }
fi
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the wasm32-wasip2 standard library if this toolchain lacks it.
ensure_wasm_target() {
  local libdir
  libdir=$(rustc --print target-libdir --target wasm32-wasip2 2>/dev/null || true)
  if [ -n "$libdir" ] && [ -d "$libdir" ]; then
    return
  fi
  command -v rustup >/dev/null ||
    die "the wasm32-wasip2 target is missing and rustup is not installed: install it for your toolchain"
  say "installing the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
}

# Installs (Debian/Ubuntu: apt-get) the real servers the tests start:
# redis-server, rabbitmq-server (with epmd), prometheus and promtool; and curl,
# which runs the seed READMEs' examples verbatim.
ensure_test_servers() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  { [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && command -v epmd >/dev/null; } || missing+=(rabbitmq-server)
  { command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
  # tests/support's AlertmanagerServer (sink-alertmanager): Debian names it prometheus-alertmanager.
  { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; } || missing+=(prometheus-alertmanager)
  # tests/support's PostgresServer (the sql capability): initdb and postgres
  # from /usr/lib/postgresql/N/bin, psql and pg_isready on the PATH.
  { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && command -v psql >/dev/null &&
    command -v pg_isready >/dev/null; } || missing+=(postgresql)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  # deploy/wasmon.service is checked with `systemd-analyze verify`.
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  # The dashboard is tested in headless Chromium over WebDriver (tests/it/dashboard.rs).
  { command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || missing+=(chromium chromium-driver)
  apt_install "${missing[@]}"
}

# The Python tools the tests run, in a venv at the repository root (`.venv`,
# gitignored): moto in server mode, the S3-compatible server of the storage
# tests (tests/support/src/servers/s3.rs), pinned. Idempotent.
MOTO_VERSION=5.2.5
# openapi-spec-validator checks /openapi.json (tests/it/openapi.rs).
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
ensure_python_tools() {
  local venv="$root/.venv"
  if [ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/openapi-spec-validator" ] &&
    "$venv/bin/python3" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$MOTO_VERSION' or m.version('openapi-spec-validator') != '$OPENAPI_SPEC_VALIDATOR_VERSION')" 2>/dev/null; then
    return
  fi
  command -v python3 >/dev/null || apt_install python3 python3-venv
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
  say "installing moto[server]==$MOTO_VERSION into .venv"
  "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
  "$venv/bin/pip" install -q "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
}

# Installs the load generator the benchmarks drive HTTP with.
ensure_bench_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  # host/benches/amqp.rs runs a real broker.
  { [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && command -v epmd >/dev/null; } || missing+=(rabbitmq-server)
  apt_install "${missing[@]}"
}

# apt-get installs the packages named (none: nothing to do).
apt_install() {
  local missing=("$@")
  if [ ${#missing[@]} -eq 0 ]; then
    return
  fi
  command -v apt-get >/dev/null ||
    die "these packages are needed and this is not a Debian-like system: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing ${missing[*]} needs root (or sudo)"
    sudo=(sudo)
  fi
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# Runs cargo in a guest workspace (plugins/, tests/guests/) so its own
# .cargo/config.toml decides the target and the target dir.
guest_cargo() {
  local ws=$1
  shift
  (cd "$root/$ws" &&
    env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u CARGO_BUILD_TARGET_DIR -u RUSTFLAGS \
      -u CARGO_ENCODED_RUSTFLAGS cargo "$@")
}

# Builds every guest workspace that exists, in release.
build_guests() {
  local ws
  for ws in plugins tests/guests; do
    if [ -f "$root/$ws/Cargo.toml" ]; then
      say "building $ws/ (wasm32-wasip2, release)"
      guest_cargo "$ws" build --release
    fi
  done
}
