//! The files: the current one (opened at the first write after a start or
//! a rotation), rotation by size and age, and retention of the newest
//! `max_files`. Plain `std::fs` on the directory, so it is unit-tested
//! natively on a temporary directory.

use crate::config::{Format, Settings};
use crate::encode;
use std::fs::{File, OpenOptions};
use std::io::Write;
use wasmon_sdk::Event;

/// Why a write failed.
#[derive(Debug, PartialEq)]
pub enum WriteError {
    /// The filesystem refused (full, over the host's cap, gone): worth a retry.
    Io(String),
    /// An event has no text in the format: a retry cannot help.
    Encode(String),
}

/// The file being written.
struct Current {
    name: String,
    file: File,
    /// Bytes in the file, pending ones included.
    size: u64,
    /// Bytes of the header (an empty file holds only that).
    header: u64,
    /// When it was started (Unix ms).
    started_ms: u64,
}

/// Writes batches to rotating files.
pub struct Writer {
    settings: Settings,
    current: Option<Current>,
    /// The next file's sequence number.
    next_seq: u32,
    /// Bytes encoded for the current file, not yet written.
    pending: Vec<u8>,
    /// Whether a file was started since the oldest were last deleted: only
    /// then can there be more than `max_files`.
    retain_due: bool,
}

impl Writer {
    /// A writer for `settings`; creates the directory when missing and
    /// numbers new files after the existing ones.
    pub fn new(settings: Settings) -> Result<Writer, String> {
        std::fs::create_dir_all(&settings.dir)
            .map_err(|e| format!("cannot create {}: {e}", settings.dir))?;
        let next_seq = own_files(&settings)?
            .iter()
            .filter_map(|n| encode::parse_name(&settings.prefix, settings.format, n))
            .max()
            .map_or(1, |s| s.wrapping_add(1));
        Ok(Writer {
            settings,
            current: None,
            next_seq,
            pending: Vec::new(),
            retain_due: true,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Writes `events` at time `now_ms`, makes them durable (fsync), then
    /// deletes the oldest files past `max_files`. An error leaves what was
    /// written (a retry may write some events twice; readers deduplicate
    /// on `id`).
    pub fn write(&mut self, events: &[&Event], now_ms: u64) -> Result<(), WriteError> {
        if events.is_empty() {
            return Ok(());
        }
        if let (Some(current), Some(every)) = (&self.current, self.settings.rotate_every)
            && now_ms.saturating_sub(current.started_ms) >= every.as_millis() as u64
        {
            self.rotate().map_err(WriteError::Io)?;
        }
        let mut line = Vec::new();
        for event in events {
            line.clear();
            encode::line(self.settings.format, event, &mut line).map_err(|e| {
                WriteError::Encode(format!("cannot encode event {}: {e}", event.id))
            })?;
            if let Some(current) = &self.current
                && current.size > current.header
                && current.size + line.len() as u64 > self.settings.max_file_bytes
            {
                self.rotate().map_err(WriteError::Io)?;
            }
            if self.current.is_none() {
                self.open(now_ms).map_err(WriteError::Io)?;
            }
            self.pending.extend_from_slice(&line);
            if let Some(current) = &mut self.current {
                current.size += line.len() as u64;
            }
        }
        self.flush().map_err(WriteError::Io)?;
        if self.retain_due {
            self.retain().map_err(WriteError::Io)?;
            self.retain_due = false;
        }
        Ok(())
    }

    /// Writes what is pending to the current file and syncs it.
    fn flush(&mut self) -> Result<(), String> {
        let Some(current) = &mut self.current else {
            return Ok(());
        };
        let dir = &self.settings.dir;
        current
            .file
            .write_all(&self.pending)
            .and_then(|()| current.file.sync_data())
            .map_err(|e| format!("cannot write {dir}/{}: {e}", current.name))?;
        self.pending.clear();
        Ok(())
    }

    /// Closes the current file: the next write starts a new one.
    fn rotate(&mut self) -> Result<(), String> {
        self.flush()?;
        self.current = None;
        Ok(())
    }

    /// Starts a new file (with the CSV header).
    fn open(&mut self, now_ms: u64) -> Result<(), String> {
        let settings = &self.settings;
        let name = encode::file_name(&settings.prefix, now_ms, self.next_seq, settings.format);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.retain_due = true;
        let path = format!("{}/{name}", settings.dir);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot create {path}: {e}"))?;
        let header = match settings.format {
            Format::Jsonl => &[][..],
            Format::Csv => encode::CSV_HEADER.as_bytes(),
        };
        self.pending.extend_from_slice(header);
        self.current = Some(Current {
            name,
            file,
            size: header.len() as u64,
            header: header.len() as u64,
            started_ms: now_ms,
        });
        Ok(())
    }

    /// Deletes the oldest of this sink's files past `max_files`.
    fn retain(&mut self) -> Result<(), String> {
        let settings = &self.settings;
        let mut files = own_files(settings)?;
        files.sort();
        let excess = files.len().saturating_sub(settings.max_files);
        for name in &files[..excess] {
            if self.current.as_ref().is_some_and(|c| &c.name == name) {
                continue;
            }
            let path = format!("{}/{name}", settings.dir);
            std::fs::remove_file(&path).map_err(|e| format!("cannot delete {path}: {e}"))?;
        }
        Ok(())
    }
}

/// The names of this sink's files in its directory.
fn own_files(settings: &Settings) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(&settings.dir)
        .map_err(|e| format!("cannot list {}: {e}", settings.dir))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", settings.dir))?;
        if let Some(name) = entry.file_name().to_str()
            && encode::parse_name(&settings.prefix, settings.format, name).is_some()
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wasmon_sdk::Severity;

    fn event(n: u32) -> Event {
        Event {
            id: format!("e{n}"),
            time_ms: 1_714_564_800_000 + u64::from(n),
            event_type: "error".into(),
            source: "ingest".into(),
            service: Some("api".into()),
            component: None,
            severity: Severity::Warning,
            detail: Some(format!("event {n}")),
            attributes: Vec::new(),
            alert: None,
        }
    }

    fn settings(dir: &std::path::Path, format: Format) -> Settings {
        Settings {
            dir: dir.to_string_lossy().into_owned(),
            prefix: "events".into(),
            format,
            max_file_bytes: 1000,
            rotate_every: None,
            max_files: 3,
            events: Default::default(),
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sink-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn listing(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = temp("size");
        let mut w = Writer::new(settings(&dir, Format::Jsonl)).unwrap();
        let events: Vec<Event> = (0..100).map(event).collect();
        for chunk in events.chunks(10) {
            let batch: Vec<&Event> = chunk.iter().collect();
            w.write(&batch, 1_714_564_800_000).unwrap();
        }
        let names = listing(&dir);
        assert_eq!(names.len(), 3, "{names:?}");
        let mut ids = Vec::new();
        for name in &names {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(text.len() <= 1000, "{name}: {}", text.len());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                ids.push(v["id"].as_str().unwrap().to_string());
            }
        }
        // The newest events survive, in order, without gaps.
        let last: u32 = ids.last().unwrap()[1..].parse().unwrap();
        assert_eq!(last, 99);
        let first: u32 = ids[0][1..].parse().unwrap();
        let expect: Vec<String> = (first..100).map(|n| format!("e{n}")).collect();
        assert_eq!(ids, expect);
        // A restart numbers new files after the old ones.
        let mut w = Writer::new(settings(&dir, Format::Jsonl)).unwrap();
        w.write(&[&event(100)], 1_714_564_800_000).unwrap();
        let newest = listing(&dir).pop().unwrap();
        assert!(
            std::fs::read_to_string(dir.join(&newest))
                .unwrap()
                .contains("e100")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotates_by_age_with_a_csv_header_per_file() {
        let dir = temp("age");
        let mut s = settings(&dir, Format::Csv);
        s.rotate_every = Some(Duration::from_secs(60));
        s.max_file_bytes = 1 << 20;
        let mut w = Writer::new(s).unwrap();
        let t0 = 1_714_564_800_000;
        w.write(&[&event(1)], t0).unwrap();
        w.write(&[&event(2)], t0 + 59_000).unwrap();
        w.write(&[&event(3)], t0 + 60_000).unwrap();
        let names = listing(&dir);
        assert_eq!(names.len(), 2, "{names:?}");
        let first = std::fs::read_to_string(dir.join(&names[0])).unwrap();
        assert!(first.starts_with(encode::CSV_HEADER));
        assert_eq!(first.lines().count(), 3);
        let second = std::fs::read_to_string(dir.join(&names[1])).unwrap();
        assert!(second.starts_with(encode::CSV_HEADER) && second.contains("e3"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
