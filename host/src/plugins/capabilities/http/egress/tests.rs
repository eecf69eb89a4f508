//! Unit tests of the self-address check and of request routing.

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn every_loopback_alias_and_form_on_the_port_is_the_host() {
    let me = SelfAddresses::new(addr("127.0.0.1:9400"));
    for a in [
        "127.0.0.1:9400",
        "127.0.0.2:9400",
        "127.255.255.254:9400",
        "0.0.0.0:9400",
        "0.1.2.3:9400",
        "[::1]:9400",
        "[::]:9400",
        "[::ffff:127.0.0.1]:9400",
        "[::ffff:127.9.9.9]:9400",
        "[::127.0.0.1]:9400",
        "[::ffff:0.0.0.0]:9400",
    ] {
        assert!(me.contains(addr(a)), "{a}");
    }
    for a in [
        "127.0.0.1:6379",
        "[::1]:9401",
        "192.0.2.1:9400",
        "[2001:db8::1]:9400",
        "[::ffff:192.0.2.1]:9400",
    ] {
        assert!(!me.contains(addr(a)), "{a}");
    }
}

#[test]
fn a_specific_bind_adds_its_address_and_an_unspecified_one_every_interface() {
    let me = SelfAddresses::new(addr("192.0.2.7:9400"));
    assert!(me.contains(addr("192.0.2.7:9400")));
    assert!(me.contains(addr("[::ffff:192.0.2.7]:9400")));
    assert!(me.contains(addr("127.0.0.1:9400")));
    assert!(!me.contains(addr("192.0.2.8:9400")));

    let interfaces = interface_addresses().unwrap();
    assert!(
        interfaces.iter().any(|ip| ip.is_loopback()),
        "{interfaces:?}"
    );
    for bind in ["0.0.0.0:9400", "[::]:9400"] {
        let me = SelfAddresses::new(addr(bind));
        for ip in &interfaces {
            assert!(me.contains(SocketAddr::new(*ip, 9400)), "{bind}: {ip}");
            assert!(!me.contains(SocketAddr::new(*ip, 9401)), "{bind}: {ip}");
        }
        assert!(!me.contains(addr("192.0.2.200:9400")), "{bind}");
    }
}

fn route(egress: &Egress, method: reqwest::Method, url: &str, access: SelfAccess) -> &'static str {
    let url = reqwest::Url::parse(url).unwrap();
    let port = url.port_or_known_default().unwrap();
    match egress.route(&url, port, &method, access) {
        Ok(client) if std::ptr::eq(client, &egress.open) => "open",
        Ok(_) => "guarded",
        Err(_) => "refused",
    }
}

#[test]
fn requests_are_routed_by_port_literal_and_grant() {
    use reqwest::Method;
    let egress = Egress::new().unwrap();
    let none = SelfAccess::None;
    // Nothing listens yet: nothing is the host.
    assert_eq!(
        route(&egress, Method::POST, "http://127.0.0.1:9400/", none),
        "open"
    );
    egress.set_listening(addr("0.0.0.0:9400"));
    let cases = [
        (
            Method::POST,
            "http://127.0.0.1:9400/api/plugins/x/reset",
            none,
            "refused",
        ),
        (
            Method::GET,
            "http://127.0.0.1:9400/metrics",
            none,
            "refused",
        ),
        (Method::GET, "http://0x7f.1:9400/metrics", none, "refused"),
        (Method::GET, "http://2130706433:9400/", none, "refused"),
        (Method::GET, "http://[::ffff:7f00:1]:9400/", none, "refused"),
        (Method::GET, "http://[::1]:9400/", none, "refused"),
        (Method::GET, "http://0.0.0.0:9400/", none, "refused"),
        (Method::GET, "http://localhost:9400/", none, "guarded"),
        (Method::GET, "http://example.org:9400/", none, "guarded"),
        (Method::GET, "http://192.0.2.1:9400/", none, "open"),
        (Method::GET, "http://127.0.0.1:6379/", none, "open"),
        (Method::GET, "http://localhost:6379/", none, "open"),
        (
            Method::GET,
            "http://127.0.0.1:9400/metrics",
            SelfAccess::Read,
            "open",
        ),
        (
            Method::HEAD,
            "http://localhost:9400/healthz",
            SelfAccess::Read,
            "open",
        ),
        (
            Method::POST,
            "http://127.0.0.1:9400/metrics",
            SelfAccess::Read,
            "refused",
        ),
        (
            Method::GET,
            "http://127.0.0.1:9400/api/plugins",
            SelfAccess::Read,
            "refused",
        ),
        (
            Method::GET,
            "http://127.0.0.1:9400/%6detrics",
            SelfAccess::Read,
            "refused",
        ),
        (
            Method::GET,
            "http://localhost:9400/heartbeat",
            SelfAccess::Read,
            "guarded",
        ),
    ];
    for (method, url, access, expect) in cases {
        assert_eq!(
            route(&egress, method.clone(), url, access),
            expect,
            "{method} {url} {access:?}"
        );
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_the_host_is_refused_at_connect_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let egress = Egress::new().unwrap();
    egress.set_listening(listener.local_addr().unwrap());
    let url = reqwest::Url::parse(&format!("http://localhost:{port}/api/plugins/reload")).unwrap();
    let client = egress
        .route(&url, port, &reqwest::Method::POST, SelfAccess::None)
        .unwrap();
    let accept = tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept());
    let (sent, accepted) = tokio::join!(client.post(url).send(), accept);
    let error = sent.unwrap_err();
    let why = egress
        .refusal(&error)
        .unwrap_or_else(|| panic!("not a refusal: {error:?}"));
    assert!(why.contains("localhost resolves to"), "{why}");
    assert!(why.contains("self = \"read\""), "{why}");
    assert!(accepted.is_err(), "the host was connected to");
}
