//! Fixture `guest-not-a-plugin`: a valid wasm32-wasip2 component that exports
//! `wasi:cli/run` and none of the wasmon worlds, so loading it must be
//! rejected as the wrong world (and the previous version, if any, kept).

fn main() {
    println!("guest-not-a-plugin: a WASI command, not a wasmon plugin");
}
