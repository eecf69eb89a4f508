//! Fixture `guest-rule-trap` (hostile): `init()` succeeds, `evaluate()`
//! panics on every call, which aborts: a trap. As a rule's shadow it is
//! reported and backs off while the serving version keeps evaluating.

use wasmon_sdk::{Alert, Error, Rule, RuleInput};

/// The rule.
pub struct TrapRule;

impl Rule for TrapRule {
    fn init() -> Result<Self, Error> {
        Ok(TrapRule)
    }

    #[allow(clippy::panic)]
    fn evaluate(&mut self, _input: RuleInput) -> Result<Vec<Alert>, Error> {
        panic!("guest-rule-trap: deliberate panic in evaluate");
    }
}

wasmon_sdk::export_rule!(TrapRule);
