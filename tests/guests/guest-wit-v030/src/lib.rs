//! A collector built against `wasmon:plugin@0.3.0` (`wit/plugin.wit`: a
//! copy of the host's 0.2.0 WIT with only the package version changed), as
//! a plugin built for a newer wasmon would be. No host supports 0.3.0: the
//! load must fail naming the version it was built for and the ones the host
//! supports. Were it loaded, it would log in `init` and return one sample.

mod bindings {
    #![allow(clippy::all)]
    wit_bindgen::generate!({ path: "wit", world: "collector" });
}

use bindings::Guest;
use bindings::wasmon::plugin::{host, types};

struct Plugin;

impl Guest for Plugin {
    fn init() -> Result<(), types::Error> {
        host::log(host::Level::Info, "wit 0.3.0 fixture ready");
        Ok(())
    }

    fn collect() -> Result<Vec<types::Sample>, types::Error> {
        Ok(vec![types::Sample {
            name: "wit_v030_up".into(),
            kind: types::MetricKind::Gauge,
            labels: Vec::new(),
            value: 1.0,
            help: None,
            timestamp_ms: None,
        }])
    }

    fn on_message(_message: types::Message) -> Result<Vec<types::Sample>, types::Error> {
        Ok(Vec::new())
    }
}

bindings::export!(Plugin with_types_in bindings);
