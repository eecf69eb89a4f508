//! The capabilities a plugin may be granted beyond logging, config and
//! state: each lives in one module that owns its manifest section
//! (`[capabilities.NAME]`, parsed and validated), its host-wide state (made
//! once per host), its per-generation state (clients, connections), its
//! `impl Host` of the WIT interface and its metrics. A new capability is one
//! module implementing [`Capability`] plus a line in the `capabilities!` list
//! at the bottom of this file.
//!
//! A capability the manifest does not grant answers `not-granted` and
//! records a violation (`PluginCtx::deny`): the call then ends as a
//! `capability` fault.

pub mod aws;
pub mod files;
pub mod http;
pub mod rabbitmq;
pub mod redis;
pub mod sql;
pub mod storage;
pub mod tcp;

use super::breaker::{BreakerSettings, Breakers};
use crate::telemetry::Telemetry;
use anyhow::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// One capability: how its grant is read from the manifest and what state
/// serves it.
pub trait Capability {
    /// The manifest section's name: `[capabilities.NAME]`.
    const NAME: &'static str;
    /// The section as written (serde, `deny_unknown_fields`).
    type Section: DeserializeOwned;
    /// The section resolved and validated: what the plugin is granted.
    type Grant: Clone + std::fmt::Debug + Serialize + Send + Sync;
    /// State shared by every plugin of the host (made once).
    type Shared: Clone + Send + Sync;
    /// State of one plugin generation (its connections, clients, breaker).
    type State: Send + Sync;

    /// Resolves a section; an error names the key within the section
    /// (`allow[0]`), the caller prefixes `capabilities.NAME.`.
    fn grant(section: Self::Section) -> Result<Self::Grant, KeyError>;
    /// The host-wide state.
    fn shared() -> Result<Self::Shared>;
    /// The state of one generation of `plugin`, granted `grant` (`None`:
    /// not granted; the state then only refuses).
    fn state(
        plugin: &Arc<str>,
        grant: Option<&Self::Grant>,
        shared: &Self::Shared,
        services: &Services<'_>,
    ) -> Self::State;
}

/// What the host lends a capability's per-generation state.
pub struct Services<'a> {
    /// Self-metrics.
    pub telemetry: &'a Arc<Telemetry>,
    /// The host's circuit breakers (a data source takes its own by name).
    pub breakers: &'a Breakers,
    /// How the plugin's breakers trip and recover (its manifest).
    pub breaker: BreakerSettings,
}

/// A value that never shows in logs, `Debug` or the API (a password, a
/// URL holding one, an S3 key).
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A bad value in a capability's manifest section: the key (relative to
/// the section) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyError {
    /// The key, e.g. `allow[0]`.
    pub key: String,
    /// What is wrong with its value.
    pub message: String,
}

impl KeyError {
    /// A bad value for `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        KeyError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Declares the capability list: one field per capability in the manifest's
/// `[capabilities]` table, the grants, the host-wide and the per-generation
/// states.
macro_rules! capabilities {
    ($($field:ident: $cap:ty),* $(,)?) => {
        /// The manifest's `[capabilities]` table as written.
        #[derive(serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub struct Sections {
            $(
                #[doc = concat!("`[capabilities.", stringify!($field), "]`.")]
                $field: Option<<$cap as Capability>::Section>,
            )*
        }

        /// What a manifest grants: `None` where a capability is not granted.
        #[derive(Debug, Clone, Default, Serialize)]
        pub struct Grants {
            $(
                #[doc = concat!("The `", stringify!($field), "` grant.")]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<<$cap as Capability>::Grant>,
            )*
        }

        impl Sections {
            /// Resolves every section; errors name the full key.
            pub fn grants(self) -> Result<Grants> {
                Ok(Grants {
                    $(
                        $field: match self.$field {
                            Some(section) => Some(<$cap as Capability>::grant(section).map_err(|e| {
                                anyhow::anyhow!(
                                    "invalid value for `capabilities.{}.{}`: {}",
                                    <$cap as Capability>::NAME,
                                    e.key,
                                    e.message
                                )
                            })?),
                            None => None,
                        },
                    )*
                })
            }
        }

        /// The host-wide state of every capability.
        #[derive(Clone)]
        pub struct Shared {
            $(
                #[doc = concat!("Of `", stringify!($field), "`.")]
                pub $field: <$cap as Capability>::Shared,
            )*
        }

        impl Shared {
            /// Makes every capability's host-wide state.
            pub fn new() -> Result<Shared> {
                Ok(Shared {
                    $($field: <$cap as Capability>::shared()?,)*
                })
            }
        }

        /// The state of one plugin generation, per capability.
        pub struct States {
            $(
                #[doc = concat!("Of `", stringify!($field), "`.")]
                pub $field: <$cap as Capability>::State,
            )*
        }

        impl States {
            /// The states of one generation of `plugin` with `grants`.
            pub fn new(
                plugin: &Arc<str>,
                grants: &Grants,
                shared: &Shared,
                services: &Services<'_>,
            ) -> States {
                States {
                    $(
                        $field: <$cap as Capability>::state(
                            plugin,
                            grants.$field.as_ref(),
                            &shared.$field,
                            services,
                        ),
                    )*
                }
            }
        }
    };
}

capabilities! {
    http: self::http::Http,
    redis: self::redis::Redis,
    rabbitmq: self::rabbitmq::Rabbitmq,
    sql: self::sql::Sql,
    storage: self::storage::Storage,
    files: self::files::Files,
    tcp: self::tcp::Tcp,
    aws: self::aws::Aws,
}
