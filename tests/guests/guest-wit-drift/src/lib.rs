//! A collector built with raw wit-bindgen against a drifted copy of
//! `wasmon:plugin@0.2.0` (`wit/plugin.wit`: the host's WIT plus one function,
//! `host.flush-logs`, which no host provides), as a plugin built against an
//! edited or unreleased WIT would be. It calls `flush-logs` in `init`, so the
//! component imports it: the load must fail naming
//! `wasmon:plugin/host@0.2.0` function `flush-logs`.

mod bindings {
    #![allow(clippy::all)]
    wit_bindgen::generate!({ path: "wit", world: "collector" });
}

use bindings::Guest;
use bindings::wasmon::plugin::{host, types};

struct Plugin;

impl Guest for Plugin {
    fn init() -> Result<(), types::Error> {
        host::log(host::Level::Info, "drifted wit fixture ready");
        host::flush_logs();
        Ok(())
    }

    fn collect() -> Result<Vec<types::Sample>, types::Error> {
        Ok(Vec::new())
    }

    fn on_message(_message: types::Message) -> Result<Vec<types::Sample>, types::Error> {
        Ok(Vec::new())
    }
}

bindings::export!(Plugin with_types_in bindings);
