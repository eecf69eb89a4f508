//! The wasmon plugin SDK: write a collector, rule or sink as a trait impl plus
//! one macro, and build it with `cargo build --release --target wasm32-wasip2`.
//!
//! ```ignore
//! use wasmon_sdk::{Collector, Error, Sample};
//!
//! struct Uptime;
//!
//! impl Collector for Uptime {
//!     fn init() -> Result<Self, Error> {
//!         Ok(Uptime)
//!     }
//!     fn collect(&mut self) -> Result<Vec<Sample>, Error> {
//!         Ok(vec![Sample::gauge("demo_answer", 42.0).with_label("source", "sdk")])
//!     }
//! }
//!
//! wasmon_sdk::export_collector!(Uptime);
//! ```
//!
//! # Layout
//!
//! - [`wit`]: the raw bindings of the host's imports (generated once, here, by
//!   `wit-bindgen`); the world a plugin exports is generated in the plugin's own
//!   crate by the `export_*!` macros, with these imports shared.
//! - [`Collector`], [`Rule`], [`Sink`]: one trait per world, with defaults.
//! - [`config`] (with the checks HTTP plugins share), [`state`], [`http`], [`redis`], [`amqp`], [`storage`], [`sql`], [`log`]: the host capabilities in Rust shape.
//! - [`glob`]: the `*` patterns manifests and configs use.
//! - [`sink`]: what an HTTP answer means for a sink's batch (retry rules), UTC times,
//!   `[config] events` filters, batch fingerprints.
//! - the re-exported WIT types ([`Sample`], [`Alert`], [`Event`], ...) with builders.

#![deny(missing_docs)]

mod bindings {
    #![allow(missing_docs, clippy::all)]
    wit_bindgen::generate!({
        path: "../../wit/0.2.0",
        world: "plugin",
        // So plugins and their tests can compare samples, alerts and events.
        additional_derives: [PartialEq],
    });
}

pub mod amqp;
pub mod config;
pub mod event_json;
pub mod glob;
pub mod http;
pub mod log;
pub mod redis;
pub mod sink;
pub mod sql;
pub mod state;
pub mod storage;
mod types;

/// The raw WIT bindings of the host's imports, for what the wrappers do not cover.
pub mod wit {
    pub use crate::bindings::wasmon::plugin::{host, http, rabbitmq, redis, sql, storage, types};
}

pub use types::{
    Alert, AlertChange, AlertState, DeliveryError, Error, Event, Label, Message, MetricKind,
    RuleInput, Sample, ServiceState, Severity,
};

/// A plugin that produces samples: on its interval (`collect`) and for each
/// message the host consumes for it (`on_message`).
pub trait Collector: Sized + 'static {
    /// Builds the plugin, typically from [`config::get`]; an error fails the load
    /// and the host keeps the previous version running.
    fn init() -> Result<Self, Error>;

    /// Returns the current samples. Series not returned again go stale.
    fn collect(&mut self) -> Result<Vec<Sample>, Error>;

    /// Handles one message consumed for this collector. By default: none.
    fn on_message(&mut self, message: Message) -> Result<Vec<Sample>, Error> {
        let _ = message;
        Ok(Vec::new())
    }
}

/// A plugin that turns samples, service states and recent events into alerts.
/// The host owns the alert state machine: return each checked condition with
/// its severity on every evaluation (`ok` when fine).
pub trait Rule: Sized + 'static {
    /// Builds the rule, typically from [`config::get`].
    fn init() -> Result<Self, Error>;

    /// Evaluates the rule once.
    fn evaluate(&mut self, input: RuleInput) -> Result<Vec<Alert>, Error>;
}

/// A plugin that delivers batches of events elsewhere. Return
/// [`DeliveryError::Retryable`] to be called again later with the same batch.
pub trait Sink: Sized + 'static {
    /// Builds the sink, typically from [`config::get`].
    fn init() -> Result<Self, Error>;

    /// Delivers one batch.
    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError>;
}

/// Exports a [`Collector`] implementation as this component's `collector` world.
#[macro_export]
macro_rules! export_collector {
    ($ty:ty) => {
        $crate::__private::export_world!(collector, $ty);
    };
}

/// Exports a [`Rule`] implementation as this component's `rule` world.
#[macro_export]
macro_rules! export_rule {
    ($ty:ty) => {
        $crate::__private::export_world!(rule, $ty);
    };
}

/// Exports a [`Sink`] implementation as this component's `sink` world.
#[macro_export]
macro_rules! export_sink {
    ($ty:ty) => {
        $crate::__private::export_world!(sink, $ty);
    };
}

/// Unix time in milliseconds, from the host's wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[doc(hidden)]
pub mod __private {
    //! What the export macros expand to; not part of the API.
    use crate::{DeliveryError, Error};
    use std::any::Any;
    use std::cell::RefCell;

    pub use wasmon_sdk_macros::export_world;
    pub use wit_bindgen;

    thread_local! {
        static PLUGIN: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    /// Builds the plugin and keeps it for later calls.
    pub fn init<T: 'static>(build: fn() -> Result<T, Error>) -> Result<(), Error> {
        let plugin = build()?;
        PLUGIN.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    /// Runs `f` on the plugin built by [`init`].
    pub fn with<T: 'static, R>(f: impl FnOnce(&mut T) -> Result<R, Error>) -> Result<R, Error> {
        PLUGIN.with(|slot| {
            match slot
                .borrow_mut()
                .as_mut()
                .and_then(|p| p.downcast_mut::<T>())
            {
                Some(plugin) => f(plugin),
                None => Err(Error::new("plugin called before init")),
            }
        })
    }

    /// [`with`] for sinks, whose error type differs.
    pub fn with_delivery<T: 'static>(
        f: impl FnOnce(&mut T) -> Result<(), DeliveryError>,
    ) -> Result<(), DeliveryError> {
        PLUGIN.with(|slot| {
            match slot
                .borrow_mut()
                .as_mut()
                .and_then(|p| p.downcast_mut::<T>())
            {
                Some(plugin) => f(plugin),
                None => Err(DeliveryError::Permanent("sink called before init".into())),
            }
        })
    }
}
