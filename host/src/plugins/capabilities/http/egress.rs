//! Where the `http` capability may connect: anywhere the allow-list says,
//! except the host's own API. A plugin allow-listed for `127.0.0.1:9400`
//! must not reach wasmon's admin or ingest routes on that port (reset its own
//! fault count, reload others, forge heartbeats), whatever name, alias or
//! address form it uses.
//!
//! [`SelfAddresses`] says whether a socket address is one the host listens
//! on: its port, and an address of this machine (every loopback alias,
//! `0.0.0.0`/`::`, IPv4-mapped IPv6, the bound address and, when it is
//! unspecified, every interface's address). [`Egress`] picks the client of a
//! request: an IP literal on the host's port is checked at once; a name on
//! the host's port goes through a client whose resolver refuses self
//! addresses at connect time (so DNS cannot rebind around the check) and
//! which uses no proxy (which would resolve the name itself). The one
//! exception is `[capabilities.http] self = "read"`: `GET`/`HEAD` of
//! `/healthz`, `/readyz`, `/metrics`.

use super::grant::{SELF_READ_PATHS, SelfAccess};
use anyhow::Result;
use parking_lot::Mutex;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The addresses the host's API is reachable at: [`contains`](Self::contains)
/// is the check every plugin HTTP request to the host's port goes through.
#[derive(Debug, Clone)]
pub struct SelfAddresses {
    listen: SocketAddr,
    /// This machine's interface addresses, read at most every
    /// [`INTERFACES_TTL`] (only consulted when the host binds an unspecified
    /// address).
    interfaces: Arc<Mutex<Option<InterfacesReading>>>,
}

/// The interface addresses, and when they were read.
type InterfacesReading = (Instant, Arc<[IpAddr]>);

/// How long a reading of the interface list is trusted. Reading it
/// (getifaddrs, a netlink round trip) costs ~80 µs here, more than half of a
/// loopback HTTP exchange, and it is needed for every request to a remote
/// address on the host's port (a central wasmon probing others on 9400). An
/// address added to an interface is therefore known within a second.
const INTERFACES_TTL: Duration = Duration::from_secs(1);

impl SelfAddresses {
    /// The host listens on `listen` (as bound: port 0 resolved).
    pub fn new(listen: SocketAddr) -> Self {
        SelfAddresses {
            listen: SocketAddr::new(canonical(listen.ip()), listen.port()),
            interfaces: Arc::default(),
        }
    }

    /// The listening address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Whether a connection to `addr` would reach the host's own API.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        addr.port() == self.listen.port() && self.is_self_ip(addr.ip())
    }

    /// Whether `ip` is an address of this host that reaches its listener
    /// (any port): loopback, unspecified, the bound address, or an
    /// interface's address when the host binds an unspecified one. When the
    /// interfaces cannot be read, every address is treated as the host's.
    pub fn is_self_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_loopback() || unspecified(ip) || ip == self.listen.ip() {
            return true;
        }
        if !self.listen.ip().is_unspecified() {
            return false;
        }
        match self.interface_addresses() {
            Ok(addresses) => addresses.iter().any(|a| canonical(*a) == ip),
            Err(error) => {
                tracing::warn!(%error, %ip, "cannot list this host's interface addresses; refusing the connection");
                true
            }
        }
    }
}

impl SelfAddresses {
    /// This machine's interface addresses, from a reading at most
    /// [`INTERFACES_TTL`] old.
    fn interface_addresses(&self) -> std::io::Result<Arc<[IpAddr]>> {
        let mut cached = self.interfaces.lock();
        if let Some((read_at, addresses)) = cached.as_ref()
            && read_at.elapsed() < INTERFACES_TTL
        {
            return Ok(addresses.clone());
        }
        let addresses: Arc<[IpAddr]> = interface_addresses()?.into();
        *cached = Some((Instant::now(), addresses.clone()));
        Ok(addresses)
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`, or the deprecated
/// `::a.b.c.d`) as IPv4; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => ip,
        IpAddr::V6(v6) => v6.to_ipv4().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `0.0.0.0/8` ("this network": Linux connects `0.0.0.0` to the local host)
/// or `::`.
fn unspecified(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified(),
    }
}

/// The addresses of every network interface of this machine (getifaddrs).
fn interface_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated to `head`; it is freed
    // below with freeifaddrs and not used after.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut addresses = Vec::new();
    let mut entry = head;
    while !entry.is_null() {
        // SAFETY: `entry` is a non-null node of the list getifaddrs returned,
        // alive until freeifaddrs; `ifa_addr` is null or points to a sockaddr
        // whose family says which sockaddr_* it is.
        unsafe {
            let ifa = &*entry;
            if !ifa.ifa_addr.is_null() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                        addresses.push(IpAddr::V4(ip));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        addresses.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            entry = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(addresses)
}

/// The HTTP clients behind every plugin's `http` capability, and the
/// host's listening address once it is bound.
#[derive(Clone)]
pub struct Egress {
    /// For requests that cannot reach the host: another port, or an IP
    /// literal that is not the host's.
    open: reqwest::Client,
    /// For names on the host's port: refuses self addresses at connect time.
    guarded: reqwest::Client,
    listening: Arc<OnceLock<SelfAddresses>>,
}

/// Why a request was refused: it would reach the host's own API.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, an address of this host")]
pub struct SelfAddressRefused {
    host: String,
    ip: IpAddr,
}

impl Egress {
    /// The clients: no redirects (the plugin sees the 3xx), rustls with ring.
    pub fn new() -> Result<Egress> {
        // reqwest is built without a default TLS provider; an error here only
        // means another part of the process installed one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listening = Arc::new(OnceLock::new());
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("wasmon/", env!("CARGO_PKG_VERSION")))
        };
        let build = |b: reqwest::ClientBuilder| {
            b.build()
                .map_err(|e| anyhow::anyhow!("failed to build the HTTP client: {e}"))
        };
        Ok(Egress {
            open: build(builder())?,
            guarded: build(builder().no_proxy().dns_resolver(GuardedResolver {
                listening: listening.clone(),
            }))?,
            listening,
        })
    }

    /// Records where the host listens; until then (and outside the host,
    /// in `plugin-check`) nothing is the host's own API. Set once.
    pub fn set_listening(&self, addr: SocketAddr) {
        if self.listening.set(SelfAddresses::new(addr)).is_err() {
            tracing::debug!(%addr, "the listening address was already set");
        }
    }

    /// Where the host's API listens, once bound (`None` before, and in
    /// `plugin-check`); the `tcp` capability refuses it too.
    pub fn listening(&self) -> Option<&SelfAddresses> {
        self.listening.get()
    }

    /// The client to send a `method` request for `url` (whose port is
    /// `port`) with, or why it is refused.
    pub fn route(
        &self,
        url: &reqwest::Url,
        port: u16,
        method: &reqwest::Method,
        access: SelfAccess,
    ) -> Result<&reqwest::Client, String> {
        let Some(me) = self.listening.get() else {
            return Ok(&self.open);
        };
        if port != me.listen().port() || access.allows(method, url.path()) {
            return Ok(&self.open);
        }
        // The URL parser writes IP literals in their one canonical form
        // (`http://0x7f.1/` has host `127.0.0.1`), IPv6 in brackets.
        let host = url.host_str().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = literal.parse::<IpAddr>() else {
            return Ok(&self.guarded);
        };
        if me.contains(SocketAddr::new(ip, port)) {
            Err(self_refusal(&format!("{}", SocketAddr::new(ip, port)), me))
        } else {
            Ok(&self.open)
        }
    }

    /// Why a request was refused, if it was because it reached the host's
    /// own API at connect time (a name that resolved to a self address).
    pub fn refusal(&self, error: &reqwest::Error) -> Option<String> {
        let me = self.listening.get()?;
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            if let Some(refused) = s.downcast_ref::<SelfAddressRefused>() {
                return Some(self_refusal(&refused.to_string(), me));
            }
            source = s.source();
        }
        None
    }
}

/// The message of a refused request to `what`.
fn self_refusal(what: &str, me: &SelfAddresses) -> String {
    format!(
        "{what}: wasmon's own API (it listens on {}) is off limits to plugins; `[capabilities.http] self = \"read\"` allows GET and HEAD of {}",
        me.listen(),
        SELF_READ_PATHS.join(", ")
    )
}

/// A resolver that refuses a name with any address of this host; used only
/// for requests to the host's port.
struct GuardedResolver {
    listening: Arc<OnceLock<SelfAddresses>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let listening = self.listening.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(me) = listening.get()
                && let Some(addr) = addrs.iter().find(|a| me.is_self_ip(a.ip()))
            {
                let refused = SelfAddressRefused {
                    ip: addr.ip(),
                    host,
                };
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests;
