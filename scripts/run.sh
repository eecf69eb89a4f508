#!/usr/bin/env bash
# The README's run command: builds the example plugins, installs them into
# examples/plugins.d/ under their instance names, and runs wasmon in release
# with examples/wasmon.toml. Extra arguments go to wasmon; works from any
# directory.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_wasm_target
say "building the example plugins (wasm32-wasip2, release)"
guest_cargo plugins build --release

out="$root/target/wasm-plugins/wasm32-wasip2/release"
dest="$root/examples/plugins.d"
mkdir -p "$dest"
# crate output -> instance name (the manifests in examples/plugins.d/ use these).
for pair in collector_http_probe:http_probe rule_threshold:threshold sink_webhook:webhook; do
  built="$out/${pair%%:*}.wasm"
  instance="$dest/${pair##*:}.wasm"
  [ -f "$built" ] || die "$built was not built: is its crate a member of plugins/Cargo.toml?"
  # Copy then rename, so a running host never loads a half-written file.
  cp "$built" "$instance.tmp"
  mv -f "$instance.tmp" "$instance"
done

say "starting wasmon with examples/wasmon.toml"
exec cargo run --release --manifest-path "$root/Cargo.toml" -p wasmon -- \
  --config "$root/examples/wasmon.toml" "$@"
