#!/usr/bin/env bash
# The README's test command: installs what the tests need (the wasm32-wasip2
# target; redis-server, rabbitmq-server and prometheus on Debian/Ubuntu),
# builds the plugins and test fixtures, then runs every test. Idempotent; extra
# arguments go to `cargo test` (e.g. `scripts/test.sh -- reload`).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

ensure_wasm_target
ensure_test_servers
ensure_python_tools
# tests/support's build.rs builds the guests too; building them here first
# shows their progress and errors plainly.
build_guests

say "running the tests (cargo test --workspace --no-fail-fast $*)"
cargo test --workspace --no-fail-fast "$@"

# Plugin crates' own unit tests run natively, where they have any.
if grep -rqs --include='*.rs' --exclude-dir=target '#\[test\]' "$root/plugins"; then
  host_triple=$(rustc -vV | sed -n 's/^host: //p')
  say "running the plugins' unit tests ($host_triple)"
  guest_cargo plugins test --target "$host_triple"
fi
say "all tests passed"
