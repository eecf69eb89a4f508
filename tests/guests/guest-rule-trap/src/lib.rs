//! Fixture `guest-rule-trap` (hostile): `init()` succeeds, `evaluate()`
//! panics on every call, which aborts: a trap. With `[config] hang = true`
//! it spins instead and never returns, until the host's budget stops it. As
//! a rule's shadow it is reported and backs off while the serving version
//! keeps evaluating, undelayed.

use serde::Deserialize;
use wasmon_sdk::{Alert, Error, Rule, RuleInput};

/// `[config]`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    /// Spin in `evaluate` instead of panicking.
    hang: bool,
}

/// The rule.
pub struct TrapRule {
    hang: bool,
}

impl Rule for TrapRule {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        Ok(TrapRule { hang: config.hang })
    }

    #[allow(clippy::panic)]
    fn evaluate(&mut self, _input: RuleInput) -> Result<Vec<Alert>, Error> {
        if self.hang {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        panic!("guest-rule-trap: deliberate panic in evaluate");
    }
}

wasmon_sdk::export_rule!(TrapRule);
