//! Network interfaces: cumulative bytes, packets and errors, and byte rates,
//! from `sysinfo`.

use super::{Sampler, rate};
use crate::config::SamplingConfig;
use crate::model::Sample;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::time::Instant;
use sysinfo::Networks;

/// Per interface (`device` label):
/// `wasmon_network_{receive,transmit}_{bytes,packets,errors}_total` and
/// `wasmon_network_{receive,transmit}_bytes_per_second` over the last interval.
///
/// Interfaces whose name starts with one of `ignore_network_devices` are
/// skipped. Rates need two runs; the first reports none.
pub struct NetworkSampler {
    networks: Option<Networks>,
    ignore: Vec<String>,
    /// Per interface: when and what the byte totals were at the previous run.
    previous: HashMap<String, (Instant, u64, u64)>,
}

impl NetworkSampler {
    /// A sampler with `config`'s ignore list; interfaces are listed on the first run.
    pub fn new(config: &SamplingConfig) -> NetworkSampler {
        NetworkSampler {
            networks: None,
            ignore: config.ignore_network_devices.clone(),
            previous: HashMap::new(),
        }
    }
}

impl Sampler for NetworkSampler {
    fn name(&self) -> &'static str {
        "network"
    }

    fn sample(&mut self, out: &mut Vec<Sample>) -> Result<()> {
        let networks = match &mut self.networks {
            Some(networks) => {
                networks.refresh(true);
                networks
            }
            None => self.networks.insert(
                Networks::new_with_refreshed_list().context("failed to list network interfaces")?,
            ),
        };
        let now = Instant::now();
        let mut interfaces: Vec<(String, &sysinfo::NetworkData)> = networks
            .iter()
            .map(|(name, data)| (name.to_string_lossy().into_owned(), data))
            .filter(|(name, _)| !self.ignore.iter().any(|p| name.starts_with(p.as_str())))
            .collect();
        interfaces.sort_by(|a, b| a.0.cmp(&b.0));
        let mut current = HashMap::with_capacity(interfaces.len());
        for (device, data) in interfaces {
            let (rx, tx) = (data.total_received(), data.total_transmitted());
            for (name, value, help) in [
                (
                    "wasmon_network_receive_bytes_total",
                    rx,
                    "Bytes received by a network interface.",
                ),
                (
                    "wasmon_network_transmit_bytes_total",
                    tx,
                    "Bytes sent by a network interface.",
                ),
                (
                    "wasmon_network_receive_packets_total",
                    data.total_packets_received(),
                    "Packets received by a network interface.",
                ),
                (
                    "wasmon_network_transmit_packets_total",
                    data.total_packets_transmitted(),
                    "Packets sent by a network interface.",
                ),
                (
                    "wasmon_network_receive_errors_total",
                    data.total_errors_on_received(),
                    "Receive errors on a network interface.",
                ),
                (
                    "wasmon_network_transmit_errors_total",
                    data.total_errors_on_transmitted(),
                    "Transmit errors on a network interface.",
                ),
            ] {
                out.push(
                    Sample::counter(name, value as f64)
                        .label("device", device.as_str())
                        .help(help),
                );
            }
            if let Some(&(then, prev_rx, prev_tx)) = self.previous.get(&device) {
                let elapsed = Some(now.duration_since(then));
                // A counter that went backwards (interface reset) gives no rate this run.
                let deltas = rx.checked_sub(prev_rx).zip(tx.checked_sub(prev_tx));
                if let Some((drx, dtx)) = deltas
                    && let (Some(rx_rate), Some(tx_rate)) = (rate(drx, elapsed), rate(dtx, elapsed))
                {
                    out.push(
                        Sample::gauge("wasmon_network_receive_bytes_per_second", rx_rate)
                            .label("device", device.as_str())
                            .help("Bytes received per second by a network interface, over the last interval."),
                    );
                    out.push(
                        Sample::gauge("wasmon_network_transmit_bytes_per_second", tx_rate)
                            .label("device", device.as_str())
                            .help("Bytes sent per second by a network interface, over the last interval."),
                    );
                }
            }
            current.insert(device, (now, rx, tx));
        }
        self.previous = current;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_then_rates() {
        let mut sampler = NetworkSampler::new(&SamplingConfig::default());
        let mut first = Vec::new();
        sampler.sample(&mut first).unwrap();
        let devices = first
            .iter()
            .filter(|s| s.name == "wasmon_network_receive_bytes_total")
            .count();
        assert!(devices > 0, "no interface: {first:#?}");
        assert!(first.iter().all(|s| !s.name.ends_with("_per_second")));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut second = Vec::new();
        sampler.sample(&mut second).unwrap();
        let rates = second
            .iter()
            .filter(|s| s.name == "wasmon_network_transmit_bytes_per_second")
            .count();
        assert_eq!(rates, devices);
    }

    #[test]
    fn ignored_prefixes_are_skipped() {
        let config = SamplingConfig {
            ignore_network_devices: vec!["lo".into()],
            ..SamplingConfig::default()
        };
        let mut out = Vec::new();
        NetworkSampler::new(&config).sample(&mut out).unwrap();
        assert!(out.iter().all(|s| s.label_value("device") != Some("lo")));
    }
}
