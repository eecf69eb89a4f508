//! The `tcp` capability: outbound TCP connections through plain WASI
//! sockets (`wasi:sockets/tcp` and `ip-name-lookup`; a Rust guest uses
//! `std::net::TcpStream`), to the `host:port` pairs the manifest lists and
//! nowhere else.
//!
//! ```toml
//! [capabilities.tcp]
//! connect = ["127.0.0.1:10051", "zabbix.example.org:10051"]
//! timeout = "2s"     # longest resolution of an allow-listed name per connect (default 2s)
//! ```
//!
//! Every connect goes through wasmtime-wasi's `socket_addr_check`: the
//! address the guest connects to must be one of an allow-listed pair's,
//! on its port (an IP literal as written; a name resolved by the host at
//! connect time, so what the guest resolved itself does not matter), and
//! never the host's own API (`http::SelfAddresses`, whatever the list
//! says). Binding, listening and UDP are refused. A refused connect fails
//! in the guest (`access-denied`), counts
//! `wasmon_plugin_capability_denied_total{capability="tcp"}` and records a
//! violation: the call ends as a `capability` fault. Allowed connects count
//! `wasmon_plugin_capability_calls_total{capability="tcp",result="ok"}`.
//! Name lookups are open to a granted plugin (wasmtime-wasi has no hook on
//! them): it can learn what a name resolves to, not connect to it.

use super::http::Egress;
use super::{Capability, KeyError, Services};
use crate::plugins::context::{PluginEnv, Violation};
use crate::units;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// Default longest resolution of an allow-listed name.
const TIMEOUT: Duration = Duration::from_secs(2);

/// `[capabilities.tcp]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The `host:port` pairs the plugin may connect to; a host is a name,
    /// an IPv4 address or a bracketed IPv6 address (`[::1]:10051`).
    connect: Vec<String>,
    /// Longest resolution of an allow-listed name when the guest connects
    /// (default 2s); the call's budget bounds the rest.
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
}

/// One allow-listed pair.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Endpoint {
    /// A name or an IP address.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// What the `tcp` capability grants.
#[derive(Debug, Clone, Serialize)]
pub struct TcpGrant {
    /// Where the plugin may connect.
    pub connect: Vec<Endpoint>,
    /// Longest resolution of a name per connect.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
}

/// Parses `host:port`.
fn endpoint(written: &str) -> Result<Endpoint, String> {
    let (host, port) = written
        .rsplit_once(':')
        .ok_or_else(|| format!("{written:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{written:?}: {port:?} is not a port"))?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{written:?}: [{v6}] is not an IPv6 address"))?
            .to_string(),
        None if host.contains(':') => {
            return Err(format!("{written:?}: write an IPv6 address in brackets"));
        }
        None => host.to_ascii_lowercase(),
    };
    let name_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if host.is_empty() || !name_ok {
        return Err(format!("{written:?}: {host:?} is not a host name"));
    }
    Ok(Endpoint { host, port })
}

/// The `tcp` capability.
pub struct Tcp;

impl Capability for Tcp {
    const NAME: &'static str = "tcp";
    type Section = Section;
    type Grant = TcpGrant;
    type Shared = ();
    type State = Option<Arc<Access>>;

    fn grant(section: Section) -> Result<TcpGrant, KeyError> {
        if section.connect.is_empty() {
            return Err(KeyError::new("connect", "list at least one host:port"));
        }
        let connect = section
            .connect
            .iter()
            .enumerate()
            .map(|(i, c)| endpoint(c).map_err(|e| KeyError::new(format!("connect[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = section.timeout.unwrap_or(TIMEOUT);
        if timeout.is_zero() {
            return Err(KeyError::new("timeout", "must be greater than zero"));
        }
        Ok(TcpGrant { connect, timeout })
    }

    fn shared() -> anyhow::Result<()> {
        Ok(())
    }

    fn state(
        plugin: &Arc<str>,
        grant: Option<&TcpGrant>,
        _shared: &(),
        services: &Services<'_>,
    ) -> Option<Arc<Access>> {
        let grant = grant?.clone();
        let telemetry = services.telemetry;
        Some(Arc::new(Access {
            plugin: plugin.clone(),
            grant,
            allowed: telemetry
                .plugin_capability_calls
                .with_label_values(&[&**plugin, "tcp", "ok"]),
            denied: telemetry
                .plugin_capability_denied
                .with_label_values(&[&**plugin, "tcp"]),
        }))
    }
}

/// One generation's allow-list and counters.
pub struct Access {
    plugin: Arc<str>,
    grant: TcpGrant,
    allowed: prometheus::IntCounter,
    denied: prometheus::IntCounter,
}

/// Opens TCP (connects only) and name lookups in a new instance's WASI
/// context when the manifest grants `tcp`; refused connects record their
/// violation in `violation`, the call's slot.
pub fn configure(env: &PluginEnv, wasi: &mut WasiCtxBuilder, violation: &Violation) {
    let Some(access) = env.capabilities.tcp.clone() else {
        return;
    };
    let egress = env.capabilities.http.clone();
    let violation = violation.clone();
    wasi.allow_tcp(true)
        .allow_ip_name_lookup(true)
        .socket_addr_check(move |addr, using| {
            let access = access.clone();
            let egress = egress.clone();
            let violation = violation.clone();
            Box::pin(async move {
                match access.check(addr, using, &egress).await {
                    Ok(()) => true,
                    Err(why) => {
                        access.denied.inc();
                        tracing::warn!(plugin = %access.plugin, capability = "tcp", reason = %why, "capability denied");
                        violation.record(format!("tcp: {why}"));
                        false
                    }
                }
            })
        });
}

impl Access {
    /// Whether the guest may use `addr` for `using`, or why not.
    async fn check(
        &self,
        addr: SocketAddr,
        using: SocketAddrUse,
        egress: &Egress,
    ) -> Result<(), String> {
        match using {
            // The implicit bind of a connect: the wildcard, any port.
            SocketAddrUse::TcpBind if addr.ip().is_unspecified() && addr.port() == 0 => {
                return Ok(());
            }
            SocketAddrUse::TcpConnect => {}
            other => {
                return Err(format!(
                    "{other:?} of {addr}: the tcp capability only connects"
                ));
            }
        }
        if let Some(me) = egress.listening()
            && me.contains(addr)
        {
            return Err(format!(
                "{addr}: wasmon's own API (it listens on {}) is off limits to plugins",
                me.listen()
            ));
        }
        let ip = canonical(addr.ip());
        for endpoint in self.grant.connect.iter().filter(|e| e.port == addr.port()) {
            if let Ok(literal) = endpoint.host.parse::<IpAddr>() {
                if canonical(literal) == ip {
                    self.allowed.inc();
                    return Ok(());
                }
                continue;
            }
            let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
            match tokio::time::timeout(self.grant.timeout, lookup).await {
                Ok(Ok(mut addrs)) => {
                    if addrs.any(|a| canonical(a.ip()) == ip) {
                        self.allowed.inc();
                        return Ok(());
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(plugin = %self.plugin, host = %endpoint.host, error = %e, "tcp: cannot resolve an allow-listed name");
                }
                Err(_) => {
                    tracing::debug!(plugin = %self.plugin, host = %endpoint.host, "tcp: resolving an allow-listed name timed out");
                }
            }
        }
        Err(format!("{addr} is not in capabilities.tcp.connect"))
    }
}

/// An IPv4 address carried in IPv6 as IPv4; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => {
            v6.to_ipv4_mapped().map_or(ip, IpAddr::V4)
        }
        _ => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            endpoint("Zabbix.Example.org:10051").unwrap(),
            Endpoint {
                host: "zabbix.example.org".into(),
                port: 10051
            }
        );
        assert_eq!(endpoint("[::1]:10051").unwrap().host, "::1");
        assert_eq!(endpoint("127.0.0.1:1").unwrap().host, "127.0.0.1");
        for bad in [
            "host", "host:0", "host:x", "::1:80", ":80", "a b:80", "[zz]:80",
        ] {
            assert!(endpoint(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn grant_names_the_key() {
        let err = Tcp::grant(Section {
            connect: vec!["127.0.0.1:10051".into(), "nope".into()],
            timeout: None,
        })
        .unwrap_err();
        assert_eq!(err.key, "connect[1]");
        let err = Tcp::grant(Section {
            connect: vec![],
            timeout: None,
        })
        .unwrap_err();
        assert_eq!(err.key, "connect");
    }
}
