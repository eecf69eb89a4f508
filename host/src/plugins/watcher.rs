//! Watches the plugin directory and turns file events into reloads: a small
//! actor fed by `notify`, debounced until the directory has been quiet for
//! `plugins.debounce`, then one reload per plugin touched. Watching starts
//! before the startup scan, so nothing written while the plugins load is missed.

use super::registry::Plugins;
use super::reload::plugin_name;
use anyhow::{Context, Result};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::Path;
use tokio::sync::mpsc;

/// What the `notify` callback sends the actor.
enum Message {
    /// A file of this plugin changed.
    Changed(String),
    /// Events were lost: look at everything.
    Rescan,
}

/// The directory watched, with the events seen so far queued: watching
/// starts before the startup scan, so a file written while the plugins load
/// is not missed; [`Watch::run`] handles what queued once they are loaded.
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
                if !relevant(&event.kind) {
                    return;
                }
                for name in event.paths.iter().filter_map(|p| plugin_name(p)) {
                    let _ = tx.send(Message::Changed(name));
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
    /// Turns events into reloads until shutdown: debounced until the
    /// directory has been quiet for `plugins.debounce`, then one reload per
    /// plugin touched (a file that did not change is left alone).
    pub(super) fn run(self, plugins: Plugins) {
        let Watch { watcher, mut rx } = self;
        tracing::info!(dir = %plugins.inner.config.dir.display(), "watching the plugin directory");
        let debounce = plugins.inner.config.debounce;
        let shutdown = plugins.inner.shutdown.clone();
        tokio::spawn(async move {
            // Keep the watcher alive as long as this task.
            let _watcher = watcher;
            let mut pending = BTreeSet::new();
            let mut rescan = false;
            loop {
                let first = tokio::select! {
                    _ = shutdown.wait() => return,
                    message = rx.recv() => message,
                };
                let Some(first) = first else { return };
                take(first, &mut pending, &mut rescan);
                // Debounce: wait until nothing arrives for `debounce`.
                loop {
                    match tokio::time::timeout(debounce, rx.recv()).await {
                        Ok(Some(message)) => take(message, &mut pending, &mut rescan),
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if std::mem::take(&mut rescan) {
                    pending.clear();
                    plugins.reload_all().await;
                    continue;
                }
                for name in std::mem::take(&mut pending) {
                    plugins.reload(&name, false).await;
                }
            }
        });
    }
}

fn take(message: Message, pending: &mut BTreeSet<String>, rescan: &mut bool) {
    match message {
        Message::Changed(name) => {
            pending.insert(name);
        }
        Message::Rescan => *rescan = true,
    }
}

/// Events that can change a plugin: not reads (our own reads of the files
/// would otherwise trigger reloads forever).
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(notify::event::AccessKind::Close(notify::event::AccessMode::Write)) => {
            true
        }
        EventKind::Access(_) => false,
        EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Any
        | EventKind::Other => true,
    }
}
