#!/usr/bin/env bash
# Runs wasmon's benchmarks (`harness = false` programs under host/benches/ that
# print their figures) after building the plugins and fixtures they load and
# installing the pinned plugin toolchains (`--bench authoring` builds Python
# and JavaScript plugins).
# Extra arguments go to `cargo bench` (e.g. `scripts/bench.sh --bench ingest`).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

ensure_wasm_target
ensure_bench_tools
ensure_authoring_tools
build_guests
say "running the benchmarks (cargo bench -p wasmon $*)"
cargo bench -p wasmon "$@"
