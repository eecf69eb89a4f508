//! Rebuilds the crate when a file is added to or removed from a directory
//! that `include_dir!` embeds (the project templates, the Python and JS SDKs,
//! the WIT): on stable Rust the macro only tracks the files it saw. Cargo
//! scans a directory given to `rerun-if-changed` recursively, by mtime.

fn main() {
    for dir in [
        "templates",
        "../plugins/sdk-python/wasmon_sdk",
        "../plugins/sdk-js/src",
        "../wit/0.2.0",
    ] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
