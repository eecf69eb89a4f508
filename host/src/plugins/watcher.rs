//! Watches the plugin directory and turns file events into reloads: a small
//! actor fed by `notify`, debounced, then one reload per plugin touched.
//! Watching starts before the startup scan, so nothing written while the
//! plugins load is missed.
//!
//! The debounce ends when the directory has been quiet for `plugins.debounce`
//! or, sooner, when every file touched is complete: closed by its writer, or
//! renamed into place (the atomic install `mv` does), and nothing else
//! arrived for [`SETTLE`]. A file still open for writing is never read early
//! on that account, and where the platform reports no closes (not Linux) the
//! quiet period is all there is.

use super::registry::Plugins;
use super::reload::plugin_name;
use anyhow::{Context, Result};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the directory must stay quiet after the last file touched is
/// complete: long enough to catch a manifest copied right after its `.wasm`
/// (`cp x.wasm x.toml plugins.d/`) in the same reload.
const SETTLE: Duration = Duration::from_millis(3);

/// Marks a batch entry as a rule's shadow (`NAME.shadow.*`): a suffix no
/// valid plugin name can end with.
const SHADOW: &str = ".shadow";

/// What the `notify` callback sends the actor.
#[derive(Debug)]
enum Message {
    /// A file of this plugin changed.
    Changed {
        name: String,
        path: PathBuf,
        writing: Writing,
    },
    /// Events were lost: look at everything.
    Rescan,
}

/// What an event says about the file's writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writing {
    /// Created or written to: more may follow until it is closed.
    Open,
    /// Closed after writing, renamed into place, or removed.
    Done,
    /// Neither (metadata, unknown kinds).
    Unknown,
}

/// The directory watched, with the events seen so far queued: watching
/// starts before the startup scan, so a file written while the plugins load
/// is not missed; [`Watch::run`] handles events from then on, while the
/// startup loads run.
pub(super) struct Watch {
    watcher: notify::RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<Message>,
}

/// Starts watching `dir`; events queue until [`Watch::run`].
pub(super) fn watch(dir: &Path) -> Result<Watch> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if event.need_rescan() {
                    let _ = tx.send(Message::Rescan);
                    return;
                }
                let Some(writing) = writing(&event.kind) else {
                    return;
                };
                for path in &event.paths {
                    if let Some(name) = plugin_name(path) {
                        let _ = tx.send(Message::Changed {
                            name,
                            path: path.clone(),
                            writing,
                        });
                    } else if let Some(rule) = super::shadow::shadow_of(path) {
                        // `NAME.shadow.*` is rule NAME's shadow, never a plugin.
                        let _ = tx.send(Message::Changed {
                            name: format!("{rule}{SHADOW}"),
                            path: path.clone(),
                            writing,
                        });
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "plugin directory watch error; rescanning");
                let _ = tx.send(Message::Rescan);
            }
        })
        .context("failed to create the plugin directory watcher")?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("failed to watch the plugin directory {}", dir.display()))?;
    Ok(Watch { watcher, rx })
}

impl Watch {
    /// Turns events into reloads until shutdown: debounced (see the module
    /// docs), then one reload per plugin touched, each a task of its own (a
    /// file that did not change is left alone).
    pub(super) fn run(self, plugins: Plugins) {
        let Watch { watcher, mut rx } = self;
        tracing::info!(dir = %plugins.inner.config.dir.display(), "watching the plugin directory");
        let debounce = plugins.inner.config.debounce;
        let shutdown = plugins.inner.shutdown.clone();
        tokio::spawn(async move {
            // Keep the watcher alive as long as this task.
            let _watcher = watcher;
            let mut batch = Batch::default();
            loop {
                let first = tokio::select! {
                    _ = shutdown.wait() => return,
                    message = rx.recv() => message,
                };
                let Some(first) = first else { return };
                batch.take(first);
                loop {
                    match tokio::time::timeout(batch.quiet(debounce), rx.recv()).await {
                        Ok(Some(message)) => batch.take(message),
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let Batch {
                    plugins: pending,
                    rescan,
                    ..
                } = std::mem::take(&mut batch);
                // Each reload runs on its own: one that waits on a slow
                // `init` holds up neither the next file nor the next event.
                // Reloads of one plugin take turns on its load lock.
                if rescan {
                    let plugins = plugins.clone();
                    tokio::spawn(async move {
                        plugins.reload_all().await;
                        plugins.load_shadows().await;
                    });
                    continue;
                }
                for name in pending {
                    let plugins = plugins.clone();
                    match name.strip_suffix(SHADOW) {
                        Some(rule) => {
                            let rule = rule.to_string();
                            tokio::spawn(async move { plugins.reload_shadow(&rule).await });
                        }
                        None => {
                            // A shadow without a file of its own runs the
                            // serving one: it follows it (unchanged otherwise).
                            tokio::spawn(async move {
                                plugins.reload(&name, false).await;
                                plugins.reload_shadow(&name).await;
                            });
                        }
                    }
                }
            }
        });
    }
}

/// The events of one debounce.
#[derive(Debug, Default)]
struct Batch {
    /// Plugins touched.
    plugins: BTreeSet<String>,
    /// Files written to and not closed yet.
    open: HashSet<PathBuf>,
    /// Some event did not say whether its writer was done (on a platform
    /// without close events, most do not).
    unknown: bool,
    /// Events were lost.
    rescan: bool,
}

impl Batch {
    fn take(&mut self, message: Message) {
        match message {
            Message::Changed {
                name,
                path,
                writing,
            } => {
                self.plugins.insert(name);
                match writing {
                    Writing::Open => {
                        self.open.insert(path);
                    }
                    Writing::Done => {
                        self.open.remove(&path);
                    }
                    Writing::Unknown => self.unknown = true,
                }
            }
            Message::Rescan => {
                self.rescan = true;
                self.unknown = true;
            }
        }
    }

    /// How long to wait for the next event before reloading.
    fn quiet(&self, debounce: Duration) -> Duration {
        if !self.unknown && self.open.is_empty() {
            SETTLE.min(debounce)
        } else {
            debounce
        }
    }
}

/// What an event of `kind` says about the file's writer (see [`Writing`]);
/// `None` for events that cannot change a plugin: reads (our own reads of the
/// files would otherwise trigger reloads forever).
fn writing(kind: &EventKind) -> Option<Writing> {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
    match kind {
        EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => {
            Some(Writing::Open)
        }
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
        | EventKind::Remove(_) => Some(Writing::Done),
        EventKind::Access(_) => None,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
            Some(Writing::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind};
    use notify::event::{RemoveKind, RenameMode};

    const DEBOUNCE: Duration = Duration::from_millis(20);

    fn batch(events: &[(&str, EventKind)]) -> Batch {
        let mut batch = Batch::default();
        for (file, kind) in events {
            let path = PathBuf::from("/plugins.d").join(file);
            batch.take(Message::Changed {
                name: plugin_name(&path).unwrap_or_default(),
                path,
                writing: writing(kind).unwrap(),
            });
        }
        batch
    }

    const CREATE: EventKind = EventKind::Create(CreateKind::File);
    const WRITE: EventKind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    const CLOSE: EventKind = EventKind::Access(AccessKind::Close(AccessMode::Write));
    const MOVED_IN: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::To));

    #[test]
    fn a_file_closed_after_writing_settles_at_once() {
        let b = batch(&[("a.wasm", CREATE), ("a.wasm", WRITE), ("a.wasm", CLOSE)]);
        assert_eq!(b.quiet(DEBOUNCE), SETTLE);
        assert_eq!(b.plugins.iter().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn a_file_renamed_into_place_settles_at_once() {
        assert_eq!(batch(&[("a.wasm", MOVED_IN)]).quiet(DEBOUNCE), SETTLE);
    }

    #[test]
    fn a_file_still_open_for_writing_waits_for_the_whole_debounce() {
        let b = batch(&[("a.wasm", CREATE), ("a.wasm", WRITE)]);
        assert_eq!(b.quiet(DEBOUNCE), DEBOUNCE);
        // Another file being complete does not make this one complete.
        let b = batch(&[("a.wasm", WRITE), ("a.toml", WRITE), ("a.toml", CLOSE)]);
        assert_eq!(b.quiet(DEBOUNCE), DEBOUNCE);
    }

    #[test]
    fn an_event_that_says_nothing_of_the_writer_waits_for_the_whole_debounce() {
        let touched = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
        let b = batch(&[("a.wasm", MOVED_IN), ("a.wasm", touched)]);
        assert_eq!(b.quiet(DEBOUNCE), DEBOUNCE);
        let mut b = batch(&[("a.wasm", MOVED_IN)]);
        b.take(Message::Rescan);
        assert_eq!(b.quiet(DEBOUNCE), DEBOUNCE);
    }

    #[test]
    fn reads_are_not_changes() {
        assert_eq!(
            writing(&EventKind::Access(AccessKind::Open(AccessMode::Any))),
            None
        );
        assert_eq!(
            writing(&EventKind::Access(AccessKind::Close(AccessMode::Read))),
            None
        );
    }

    #[test]
    fn a_removed_file_is_complete_and_a_short_debounce_is_kept() {
        let removed = EventKind::Remove(RemoveKind::File);
        assert_eq!(batch(&[("a.wasm", removed)]).quiet(DEBOUNCE), SETTLE);
        let b = batch(&[("a.wasm", CLOSE)]);
        assert_eq!(b.quiet(Duration::from_millis(1)), Duration::from_millis(1));
    }
}
