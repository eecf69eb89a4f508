//! Every guest component is a WebAssembly component, every native fixture a
//! shared library, and each is used by some test or bench: a fixture nobody
//! tests is noticed here, by name.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use wasmon_test_support::{fixtures, guests};

/// The preamble of a component (`\0asm`, version 0x0d, layer 1), as opposed to
/// a core module (`\0asm` 1 0 0 0).
const COMPONENT_PREAMBLE: &[u8] = b"\0asm\x0d\x00\x01\x00";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Rust sources under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// Whether `text` holds `word` not as part of a longer identifier.
fn mentions(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word)
        .any(|(at, _)| !text[..at].ends_with(ident) && !text[at + word.len()..].starts_with(ident))
}

#[test]
fn every_guest_is_a_component() {
    for (name, path) in guests::ALL {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {path}: {e}"));
        assert!(
            bytes.starts_with(COMPONENT_PREAMBLE),
            "{name} ({path}) is not a WebAssembly component"
        );
    }
}

#[test]
fn the_fake_nvml_is_a_shared_library_with_the_symbols_nvml_wrapper_needs() {
    let bytes = std::fs::read(fixtures::FAKE_NVML).unwrap();
    assert!(
        bytes.starts_with(b"\x7fELF"),
        "{} is not ELF",
        fixtures::FAKE_NVML
    );
    // nvml-wrapper's `Drop for Nvml` calls nvmlShutdown unconditionally, and
    // `Drop for EventSet` nvmlEventSetFree: without them it panics.
    for symbol in [
        "nvmlInit_v2",
        "nvmlShutdown",
        "nvmlEventSetFree",
        "nvmlDeviceGetMemoryInfo_v2",
    ] {
        assert!(
            bytes.windows(symbol.len()).any(|w| w == symbol.as_bytes()),
            "{symbol} missing from {}",
            fixtures::FAKE_NVML
        );
    }
}

#[test]
fn every_guest_is_used_by_a_test_or_bench() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["host/tests", "host/benches", "tests"] {
        sources(&root.join(dir), &mut files);
    }
    // Not the guests' own sources, nor this crate's library, nor this file.
    let skipped = [
        root.join("tests/guests"),
        root.join("tests/support/src"),
        root.join("tests/support/tests/fixtures.rs"),
    ];
    files.retain(|(path, _)| !skipped.iter().any(|s| path.starts_with(s)));
    let unused: Vec<&str> = guests::ALL
        .iter()
        .chain(fixtures::ALL)
        .map(|(name, _)| *name)
        .filter(|name| !files.iter().any(|(_, text)| mentions(text, name)))
        .collect();
    assert!(
        unused.is_empty(),
        "guest components no test or bench uses (write one in host/tests/ naming \
         `guests::NAME`, or remove the guest): {unused:?}"
    );
}

#[test]
fn mentions_matches_whole_identifiers_only() {
    assert!(mentions("use guests::GUEST_COUNTER;", "GUEST_COUNTER"));
    assert!(!mentions("guests::GUEST_COUNTER_V2", "GUEST_COUNTER"));
    assert!(!mentions("MY_GUEST_COUNTER", "GUEST_COUNTER"));
}
