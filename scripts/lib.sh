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

# The plugin authoring toolchains (issue 12), pinned, for the tests and
# benchmarks that generate and build Python and JavaScript plugins: a venv
# with componentize-py (scripts/authoring-tools/requirements.txt) and `npm ci`
# of scripts/authoring-tools (componentize-js, jco; lockfile committed), both
# under target/authoring-tools/. Idempotent: reinstalls only when a pin
# changed. Exports what tests/support/src/authoring.rs reads:
# WASMON_TEST_PY_TOOLS (the dir holding componentize-py), WASMON_TEST_JS_TOOLS
# (the dir holding componentize-js) and WASMON_TEST_CARGO_TARGET (the target
# dir generated Rust plugins share, so their dependencies build once).
ensure_authoring_tools() {
  local src="$root/scripts/authoring-tools" dest="$root/target/authoring-tools"
  local venv="$dest/venv" want have
  mkdir -p "$dest"

  want=$(sed -n 's/^componentize-py==//p' "$src/requirements.txt")
  have=$("$venv/bin/componentize-py" --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
    say "installing componentize-py==$want into target/authoring-tools/venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$src/requirements.txt"
  fi

  { command -v node >/dev/null && command -v npm >/dev/null; } || apt_install nodejs npm
  local stamp="$dest/package-lock.sha256"
  want=$(sha256sum "$src/package-lock.json" | awk '{print $1}')
  if [ ! -x "$dest/node_modules/.bin/componentize-js" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the JavaScript plugin toolchain (npm ci of scripts/authoring-tools) into target/authoring-tools"
    cp "$src/package.json" "$src/package-lock.json" "$dest/"
    (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
  fi

  mkdir -p "$root/target/authoring-rust"
  export WASMON_TEST_PY_TOOLS="$venv/bin"
  export WASMON_TEST_JS_TOOLS="$dest/node_modules/.bin"
  export WASMON_TEST_CARGO_TARGET="$root/target/authoring-rust"
}

# Builds the plugin examples written in Python and JavaScript with
# `wasmon plugin build` (the binary at $1) and runs their unit tests, and the
# Python and JS SDKs' own tests. Needs ensure_authoring_tools first.
build_authoring_examples() {
  local wasmon=$1 dir
  local path="$WASMON_TEST_PY_TOOLS:$WASMON_TEST_JS_TOOLS:$PATH"
  if [ -d "$root/plugins/sdk-python/tests" ]; then
    say "testing plugins/sdk-python (python3 -m unittest)"
    (cd "$root" && python3 -m unittest discover -s plugins/sdk-python/tests -q)
  fi
  if [ -d "$root/plugins/sdk-js/test" ]; then
    say "testing plugins/sdk-js (node --test)"
    (cd "$root/plugins/sdk-js" && node --test test/)
  fi
  for dir in collector-python-example rule-python-example collector-js-example; do
    dir="$root/plugins/$dir"
    [ -d "$dir" ] || die "plugin example $dir is missing"
    say "building plugins/${dir##*/} (wasmon plugin build)"
    PATH="$path" "$wasmon" plugin build "$dir"
    if [ -f "$dir/package.json" ]; then
      say "testing plugins/${dir##*/} (npm test, else node --test)"
      if (cd "$dir" && node -e 'process.exit(require("./package.json").scripts?.test ? 0 : 1)'); then
        (cd "$dir" && PATH="$path" npm test --silent)
      else
        (cd "$dir" && node --test)
      fi
    else
      say "testing plugins/${dir##*/} (python3 -m unittest)"
      (cd "$dir" && PYTHONPATH="$root/plugins/sdk-python${PYTHONPATH:+:$PYTHONPATH}" python3 -m unittest discover -s . -q)
    fi
  done
}
