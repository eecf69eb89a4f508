//! Who may call what: the bearer-token check shared by the admin and ingest
//! guards, and the admin guard itself.
//!
//! Admin routes (reload, reset, plugin state, forgetting a service) require
//! `Authorization: Bearer <server.admin_token>` when a token is set. Without
//! one they answer loopback clients only: anyone else gets 403 with a detail
//! saying how to set a token, so a host listening on `0.0.0.0` (the default)
//! is not open to the network. The peer address is the
//! [`ConnectInfo`] the server inserts into every request.

use super::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The detail of a 403 to a non-loopback client when no admin token is set.
pub(super) const LOOPBACK_ONLY: &str = "admin routes answer loopback clients only while no admin token is set: set `server.admin_token` (environment WASMON_SERVER__ADMIN_TOKEN or MONITOR_ADMIN_TOKEN) and send `Authorization: Bearer <token>`";

/// Guards every admin route: the bearer token when one is configured, else
/// a loopback peer.
pub(super) async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let token = configured(state.config.server.admin_token.as_deref());
    let allowed = match token {
        Some(_) => check_bearer(&request, token),
        None => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            check_loopback(peer)
        }
    };
    match allowed {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// A token that guards something: absent and empty ones do not.
fn configured(token: Option<&str>) -> Option<&str> {
    token.filter(|t| !t.is_empty())
}

/// Loopback peers only (an IPv4-mapped `::ffff:127.0.0.1` is loopback too);
/// a request without a known peer is refused.
fn check_loopback(peer: Option<IpAddr>) -> ApiResult<()> {
    match peer {
        Some(ip) if ip.to_canonical().is_loopback() => Ok(()),
        _ => Err(ApiError::new(StatusCode::FORBIDDEN, LOOPBACK_ONLY)),
    }
}

/// Whether a server bound to `addr` without an admin token leaves admin
/// routes to loopback clients only while other clients can connect: the
/// host warns about it once at start.
pub fn admin_is_loopback_only(addr: IpAddr, token: Option<&str>) -> bool {
    configured(token).is_none() && !addr.to_canonical().is_loopback()
}

/// Checks `Authorization: Bearer <token>` in constant time when a `token` is
/// configured (an absent or empty one guards nothing).
pub(super) fn check_bearer(request: &Request, token: Option<&str>) -> ApiResult<()> {
    let Some(token) = configured(token) else {
        return Ok(());
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("invalid bearer token"))
    }
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers_only() {
        for ip in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(check_loopback(Some(ip.parse().unwrap())).is_ok(), "{ip}");
        }
        for ip in [
            "192.0.2.2",
            "10.0.0.1",
            "::ffff:192.0.2.2",
            "fd00::2",
            "0.0.0.0",
        ] {
            let err = check_loopback(Some(ip.parse().unwrap())).unwrap_err();
            assert_eq!(err.status, StatusCode::FORBIDDEN, "{ip}");
            assert!(err.detail.contains("server.admin_token"), "{}", err.detail);
        }
        assert!(check_loopback(None).is_err());
    }

    #[test]
    fn the_warning_is_for_non_loopback_binds_without_a_token() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(admin_is_loopback_only(any, None));
        assert!(admin_is_loopback_only(any, Some("")));
        assert!(!admin_is_loopback_only(any, Some("t")));
        assert!(!admin_is_loopback_only(local, None));
        assert!(admin_is_loopback_only("::".parse().unwrap(), None));
    }

    #[test]
    fn tokens_compare_in_full() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
