//! Fixture `guest-rule-static`: a rule returning one alert named `static` on
//! every evaluation: severity `warning` while `[config] firing = true`, `ok`
//! otherwise (so a manifest change resolves it). Its value is 1 or 0 and its
//! summary says which.

use serde::Deserialize;
use wasmon_sdk::{Alert, Error, Rule, RuleInput, Severity};

/// The `[config]` table.
#[derive(Deserialize)]
struct Config {
    /// Whether the alert fires.
    #[serde(default)]
    firing: bool,
}

/// The rule.
pub struct Static {
    firing: bool,
}

impl Rule for Static {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        Ok(Static {
            firing: config.firing,
        })
    }

    fn evaluate(&mut self, _input: RuleInput) -> Result<Vec<Alert>, Error> {
        let alert = if self.firing {
            Alert::new(
                "static",
                Severity::Warning,
                "static fixture alert: firing = true",
            )
            .with_value(1.0)
        } else {
            Alert::new(
                "static",
                Severity::Ok,
                "static fixture alert: firing = false",
            )
            .with_value(0.0)
        };
        Ok(vec![alert])
    }
}

wasmon_sdk::export_rule!(Static);
