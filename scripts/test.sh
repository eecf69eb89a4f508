#!/usr/bin/env bash
# The README's test command: installs what the tests need (the wasm32-wasip2
# target; redis-server, rabbitmq-server and prometheus on Debian/Ubuntu; the
# pinned Python and JavaScript plugin toolchains from PyPI and npm), builds the
# plugins, the Python and JS examples and the test fixtures, then runs every
# test. Idempotent; extra arguments go to `cargo test` (e.g.
# `scripts/test.sh -- reload`).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"
# The Python SDK and examples are tested in place: no __pycache__ in the
# directories `wasmon` embeds (host/build.rs would see them change).
export PYTHONDONTWRITEBYTECODE=1

ensure_wasm_target
ensure_test_servers
ensure_python_tools
ensure_authoring_tools
# tests/support's build.rs builds the guests too; building them here first
# shows their progress and errors plainly.
build_guests

# The Python and JavaScript examples are built by `wasmon plugin build` itself.
say "building wasmon (cargo build -p wasmon)"
cargo build -p wasmon
build_authoring_examples "${CARGO_TARGET_DIR:-$root/target}/debug/wasmon"

say "running the tests (cargo test --workspace --no-fail-fast $*)"
cargo test --workspace --no-fail-fast "$@"

# Plugin crates' own unit tests run natively, where they have any.
if grep -rqs --include='*.rs' --exclude-dir=target '#\[test\]' "$root/plugins"; then
  host_triple=$(rustc -vV | sed -n 's/^host: //p')
  say "running the plugins' unit tests ($host_triple)"
  guest_cargo plugins test --target "$host_triple"
fi
say "all tests passed"
