//! A collector built against a frozen copy of `wasmon:plugin@0.1.0`
//! (`wit/plugin.wit`, never updated) with raw `wit-bindgen`, not the SDK:
//! the host must keep loading and running it unchanged. It logs in `init`,
//! counts its calls in its state, reads its config and, when the config says
//! so, sends a Redis command through the 0.1.0 `redis` interface.

mod bindings {
    #![allow(clippy::all)]
    wit_bindgen::generate!({ path: "wit", world: "collector" });
}

use bindings::Guest;
use bindings::wasmon::plugin::{host, redis, types};

struct Plugin;

impl Guest for Plugin {
    fn init() -> Result<(), types::Error> {
        host::log(host::Level::Info, "wit 0.1.0 fixture ready");
        Ok(())
    }

    fn collect() -> Result<Vec<types::Sample>, types::Error> {
        let calls = host::state_get("calls")
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
            + 1;
        host::state_set("calls", &calls.to_le_bytes())?;
        let mut samples = vec![sample(
            "wit_v010_calls",
            types::MetricKind::Counter,
            calls as f64,
            vec![],
        )];
        if let Some(key) = host::config_get("redis_key") {
            // A nested reply reaches 0.1.0 flattened: count its leaves.
            let leaves =
                match redis::command("XRANGE", &[key.into_bytes(), b"-".to_vec(), b"+".to_vec()]) {
                    Ok(redis::Reply::Array(items)) => items.len() as f64,
                    Ok(_) => 0.0,
                    Err(e) => {
                        host::log(host::Level::Warn, &format!("redis: {e:?}"));
                        -1.0
                    }
                };
            samples.push(sample(
                "wit_v010_redis_leaves",
                types::MetricKind::Gauge,
                leaves,
                vec![],
            ));
        }
        Ok(samples)
    }

    fn on_message(_message: types::Message) -> Result<Vec<types::Sample>, types::Error> {
        Ok(Vec::new())
    }
}

fn sample(
    name: &str,
    kind: types::MetricKind,
    value: f64,
    labels: Vec<types::Label>,
) -> types::Sample {
    let mut labels = labels;
    labels.push(types::Label {
        name: "wit".into(),
        value: "0.1.0".into(),
    });
    types::Sample {
        name: name.into(),
        kind,
        labels,
        value,
        help: Some("The wit 0.1.0 compatibility fixture.".into()),
        timestamp_ms: None,
    }
}

bindings::export!(Plugin with_types_in bindings);
