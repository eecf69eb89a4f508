//! `wasmon:plugin/host`: logging, the plugin's own config, and its key-value state.

use crate::plugins::bindings::{host, types};
use crate::plugins::context::PluginCtx;

/// Longest log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 4096;

impl host::Host for PluginCtx {
    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        let env = &self.env;
        let allowed = env.log_limiter.lock().take();
        if !allowed {
            env.telemetry
                .plugin_log_dropped
                .with_label_values(&[&*env.name])
                .inc();
            return Ok(());
        }
        let message = truncate(&message, MAX_LOG_LINE);
        let plugin = &*env.name;
        match level {
            host::Level::Trace => tracing::trace!(plugin, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    fn plugin_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.env.name.to_string())
    }

    fn config_json(&mut self) -> wasmtime::Result<String> {
        Ok(self.env.config_json.clone())
    }

    fn config_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.env.manifest.config.get(&key).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }))
    }

    fn state_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.env.state.get(&key))
    }

    fn state_set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let quota = self.env.manifest.state_quota.as_usize();
        Ok(self
            .env
            .state
            .set(&key, value, quota)
            .map_err(|message| types::Error { message }))
    }

    fn state_delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.env.state.delete(&key);
        Ok(())
    }

    fn state_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.env.state.keys())
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(super::truncate("héllo", 2), "h");
        assert_eq!(super::truncate("héllo", 3), "hé");
        assert_eq!(super::truncate("abc", 10), "abc");
    }
}
