//! Fixture `guest-files-escape` (hostile): every `collect()` tries, for each
//! case of `[config] cases` (a name and a path), to read the path and to
//! write a file at it with plain `std::fs`, and reports what worked as
//! `files_read{case}` and `files_write{case}` (1 = it worked, 0 = refused;
//! the error is logged). A case named `inside` is expected to work; the
//! others point outside the preopened `/data` (`..`, absolute host paths,
//! symlinks the test planted) and must all be 0. With `[config] fill_bytes`
//! it also appends that many bytes to `/data/fill.bin` per call (the
//! `max_bytes` test), reporting the file's size as `files_fill_bytes`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use wasmon_sdk::{Collector, Error, Sample};

/// `[config]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Case name → path.
    #[serde(default)]
    cases: BTreeMap<String, String>,
    /// Bytes appended to `/data/fill.bin` per call (0: none).
    #[serde(default)]
    fill_bytes: usize,
}

/// The collector.
pub struct FilesEscape {
    config: Config,
}

/// What the guest writes: recognisable in a file that should not exist.
const PAYLOAD: &[u8] = b"written by guest-files-escape\n";

impl Collector for FilesEscape {
    fn init() -> Result<Self, Error> {
        Ok(FilesEscape {
            config: wasmon_sdk::config::get()?,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::new();
        for (case, path) in &self.config.cases {
            let write = std::fs::write(path, PAYLOAD);
            if let Err(e) = &write {
                wasmon_sdk::info!("files-escape: write {case} {path}: {e}");
            }
            let read = std::fs::read(path);
            if let Err(e) = &read {
                wasmon_sdk::info!("files-escape: read {case} {path}: {e}");
            }
            samples
                .push(Sample::gauge("files_write", flag(write.is_ok())).with_label("case", case));
            samples.push(Sample::gauge("files_read", flag(read.is_ok())).with_label("case", case));
        }
        if self.config.fill_bytes > 0 {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open("/data/fill.bin")
                .map_err(|e| Error::new(format!("open /data/fill.bin: {e}")))?;
            file.write_all(&vec![b'x'; self.config.fill_bytes])
                .map_err(|e| Error::new(format!("append to /data/fill.bin: {e}")))?;
            let size = file
                .metadata()
                .map_err(|e| Error::new(format!("stat /data/fill.bin: {e}")))?
                .len();
            samples.push(Sample::gauge("files_fill_bytes", size as f64));
        }
        Ok(samples)
    }
}

fn flag(ok: bool) -> f64 {
    if ok { 1.0 } else { 0.0 }
}

wasmon_sdk::export_collector!(FilesEscape);
