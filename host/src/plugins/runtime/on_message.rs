//! `on-message`: a collector's call for one message the host consumed for
//! it, under the same budget, limits and faults as `collect`.

use super::{Budget, CallError, Exports, Instance, check_output, run, wrong_world};
use crate::model;
use crate::plugins::bindings::types;

impl Instance {
    /// Calls a collector's `on-message` with `message`.
    pub async fn on_message(
        &mut self,
        message: &types::Message,
    ) -> Result<Vec<model::Sample>, CallError> {
        let env = self.store.data().env.clone();
        let budget = Budget::new(env.manifest.timeout, "timeout");
        let samples = match &self.exports {
            Exports::Collector(e) => {
                run(&mut self.store, budget, async |s| {
                    e.call_on_message(s, message).await
                })
                .await?
            }
            Exports::CollectorV0_1(e) => {
                run(&mut self.store, budget, async |s| {
                    e.call_on_message(s, message).await
                })
                .await?
            }
            _ => return Err(wrong_world("on-message")),
        }
        .map_err(|e| CallError::Plugin(e.message))?;
        check_output(samples.len(), env.manifest.max_samples_per_call)?;
        Ok(samples.into_iter().map(model::Sample::from).collect())
    }
}
