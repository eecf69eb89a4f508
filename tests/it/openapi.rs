//! The API described (issue 11 point 6): `GET /openapi.json` is a valid
//! OpenAPI 3.1 document (structure checks here, and `openapi-spec-validator`
//! from the repository's `.venv`), every route the host serves is in it and
//! every path in it is served, the README's route table names every route,
//! and `GET /docs` loads only same-origin assets that answer.

use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, StatusCode, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

/// Every route the host serves, as README's "HTTP API" table lists them.
/// Adding a route means adding it here, to the README and (through
/// `routes!`) to the document; the tests below fail until all three agree.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/heartbeat"),
    ("POST", "/events"),
    ("POST", "/v1/event"),
    ("POST", "/v1/ingest/events"),
    ("POST", "/v1/events/batch"),
    ("POST", "/v1/ingest/events:batch"),
    ("GET", "/v1/health"),
    ("GET", "/api/services"),
    ("GET", "/api/services/{name}"),
    ("DELETE", "/api/services/{name}"),
    ("GET", "/api/events"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/plugins"),
    ("GET", "/api/plugins/{name}"),
    ("PUT", "/api/plugins/{name}"),
    ("GET", "/api/plugins/{name}/restart-history"),
    ("POST", "/api/plugins/reload"),
    ("POST", "/api/plugins/{name}/reload"),
    ("POST", "/api/plugins/{name}/reset"),
    ("GET", "/api/plugins/{name}/state"),
    ("GET", "/api/plugins/{name}/shadow"),
    ("POST", "/api/plugins/{name}/shadow"),
    ("DELETE", "/api/plugins/{name}/shadow"),
    ("POST", "/api/plugins/{name}/shadow/promote"),
    ("POST", "/api/plugins/{name}/rollback"),
    ("POST", "/api/plugins/{name}/backtest"),
    ("GET", "/api/sinks"),
    ("GET", "/api/sinks/{name}/dead-letters"),
    ("POST", "/api/sinks/{name}/dead-letters/replay"),
    ("GET", "/api/alerts"),
    ("GET", "/api/store"),
    ("GET", "/api/samplers"),
    ("GET", "/api/samplers/{name}"),
    ("GET", "/api/samples"),
    ("GET", "/api/history"),
    ("GET", "/metrics/{snapshot}"),
    ("GET", "/health"),
    ("GET", "/api/system/monitoring/health"),
    ("GET", "/api/system/monitoring/targets"),
    ("GET", "/api/system/health/full"),
    ("GET", "/api/system/circuit-breakers"),
    ("POST", "/api/system/circuit-breakers/{name}/reset"),
    ("GET", "/api/system/supervisor"),
    ("GET", "/api/system/supervisor/status"),
    ("POST", "/api/system/supervisor/workers/{name}/start"),
    ("POST", "/api/system/supervisor/workers/{name}/stop"),
    ("POST", "/api/system/supervisor/workers/{name}/restart"),
    ("POST", "/api/system/supervisor/reset/{name}"),
    ("GET", "/api/system/supervisor/restart-history"),
    ("GET", "/ws"),
    ("GET", "/ws/metrics"),
    ("GET", "/api/system/websocket/events"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/{asset}"),
    ("GET", "/"),
    ("GET", "/ui/config.json"),
    ("GET", "/ui/{asset}"),
];

/// Routes that need the admin token (or a loopback client without one).
const ADMIN: &[(&str, &str)] = &[
    ("DELETE", "/api/services/{name}"),
    ("PUT", "/api/plugins/{name}"),
    ("POST", "/api/plugins/reload"),
    ("POST", "/api/plugins/{name}/reload"),
    ("POST", "/api/plugins/{name}/reset"),
    ("GET", "/api/plugins/{name}/state"),
    ("POST", "/api/plugins/{name}/shadow"),
    ("DELETE", "/api/plugins/{name}/shadow"),
    ("POST", "/api/plugins/{name}/shadow/promote"),
    ("POST", "/api/plugins/{name}/rollback"),
    ("POST", "/api/plugins/{name}/backtest"),
    ("POST", "/api/system/circuit-breakers/{name}/reset"),
    ("POST", "/api/system/supervisor/workers/{name}/start"),
    ("POST", "/api/system/supervisor/workers/{name}/stop"),
    ("POST", "/api/system/supervisor/workers/{name}/restart"),
    ("POST", "/api/system/supervisor/reset/{name}"),
    ("POST", "/api/sinks/{name}/dead-letters/replay"),
];

/// The tags the document may use, one per area.
const TAGS: &[&str] = &[
    "ingestion",
    "plugins",
    "alerts",
    "services",
    "history",
    "system",
    "metrics",
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A host with one collector plugin (`probe`), a known service (`edge`) and
/// no native samplers.
fn host() -> Host {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("probe", guests::GUEST_COUNTER)
            .manifest("probe", "interval = \"200ms\"\n"),
    );
    host.wait_ready(WAIT);
    let (status, body) = host.post_json("/heartbeat", &serde_json::json!({ "service": "edge" }));
    assert_eq!(status, StatusCode::OK, "{body}");
    host
}

/// `(METHOD, path)` of every operation in the document.
fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths is an object") {
        for method in METHODS {
            if item.get(*method).is_some() {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

fn listed() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

/// Every `$ref` anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn venv() -> PathBuf {
    match std::env::var_os("WASMON_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"),
    }
}

#[test]
fn the_document_is_openapi_3_1_and_passes_a_real_validator() {
    let host = host();
    let response = host.request("GET", "/openapi.json", &[], None);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let spec = response.json();

    // Structure.
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "wasmon");
    assert!(!spec["info"]["version"].as_str().unwrap().is_empty());
    let schemes = &spec["components"]["securitySchemes"];
    for scheme in ["admin_token", "ingest_token"] {
        assert_eq!(schemes[scheme]["type"], "http", "{scheme}");
        assert_eq!(schemes[scheme]["scheme"], "bearer", "{scheme}");
    }
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    assert_eq!(
        schemas["ApiError"]["required"],
        serde_json::json!(["detail"]),
        "one shared error schema"
    );
    let mut all_refs = Vec::new();
    refs(&spec, &mut all_refs);
    for target in &all_refs {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {target}"));
        assert!(schemas.contains_key(name), "dangling $ref {target}");
    }

    let mut ids = HashSet::new();
    for (method, path) in operations(&spec) {
        let op = &spec["paths"][&path][method.to_lowercase()];
        let what = format!("{method} {path}");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: no summary"
        );
        let id = op["operationId"].as_str().unwrap().to_string();
        assert!(ids.insert(id.clone()), "{what}: operationId {id} repeats");
        let tags = op["tags"].as_array().unwrap();
        assert!(
            tags.len() == 1 && TAGS.contains(&tags[0].as_str().unwrap()),
            "{what}: tags {tags:?}"
        );
        // Path parameters are documented.
        for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
            let params = op["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no parameters"));
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                "{what}: path parameter {name} undocumented"
            );
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|c| c.starts_with('2') || c == "101"),
            "{what}: no success response"
        );
        // Errors are the shared `{"detail"}` shape (the Prometheus stack's
        // and the full health's 503 are their health documents, which carry
        // a `detail` too).
        for (code, r) in responses {
            if code.starts_with('4') || code.starts_with('5') {
                let schema = &r["content"]["application/json"]["schema"]["$ref"];
                let expected = if what == "GET /api/system/monitoring/health" && code == "503" {
                    "#/components/schemas/StackHealth"
                } else if what == "GET /api/system/health/full" && code == "503" {
                    "#/components/schemas/HealthReport"
                } else {
                    "#/components/schemas/ApiError"
                };
                assert_eq!(schema, expected, "{what} {code}");
            }
        }
        let security: Vec<String> = op["security"]
            .as_array()
            .map(|s| {
                s.iter()
                    .flat_map(|r| r.as_object().unwrap().keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let admin = ADMIN.iter().any(|(m, p)| *m == method && *p == path);
        if admin {
            assert_eq!(security, ["admin_token"], "{what}");
            for code in ["401", "403"] {
                assert!(responses.contains_key(code), "{what}: no {code}");
            }
        } else if tags[0] == "ingestion" {
            assert_eq!(security, ["ingest_token"], "{what}");
            for code in ["400", "401", "408", "413", "415", "422"] {
                assert!(responses.contains_key(code), "{what}: no {code}");
            }
            assert!(
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].is_string(),
                "{what}: no request body schema"
            );
        } else if !path.starts_with("/ws") {
            assert!(
                security.is_empty(),
                "{what}: unexpected security {security:?}"
            );
        }
    }
    // Content types of the text routes.
    let metrics = &spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(
        metrics
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("text/plain; version=0.0.4")),
        "{metrics}"
    );
    assert!(
        spec["paths"]["/metrics/{snapshot}"]["get"]["responses"]["200"]["content"]
            ["application/json"]
            .is_object()
    );
    // Constraints reach the parameters.
    let alerts = spec["paths"]["/api/alerts"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = alerts.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 1000, "{limit}");

    // A real validator.
    let validator = venv().join("bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} is missing: run scripts/test.sh (it creates .venv with openapi-spec-validator)",
        validator.display()
    );
    let file = host.dir().join("openapi.json");
    std::fs::write(&file, &response.body).unwrap();
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openapi-spec-validator: {text}");
    assert!(text.contains("OK"), "{text}");
}

/// The detail of a 404 from the router's fallback (no such route).
const NO_ROUTE: &str = "no route for";

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let host = host();
    let spec = host.get_json("/openapi.json");
    let documented = operations(&spec);
    let listed = listed();
    let undocumented: Vec<_> = listed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in /openapi.json: {undocumented:?}"
    );
    let unlisted: Vec<_> = documented.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "in /openapi.json but not in this test's ROUTES (nor, then, README's table): {unlisted:?}"
    );

    // The fallback's 404 is told apart from a resource's 404.
    let (status, body) = host.get("/no/such/route");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains(NO_ROUTE), "{body}");
    let r = host.request("PUT", "/healthz", &[], None);
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Every documented operation reaches its handler: never 405, and a 404
    // only from the handler (an unknown resource), never the fallback's.
    for (method, path) in &documented {
        let concrete = path
            .replace(
                "{name}",
                if path.contains("services") {
                    "edge"
                } else {
                    "probe"
                },
            )
            .replace("{snapshot}", "system")
            .replace("{asset}", "init.js");
        assert!(!concrete.contains('{'), "placeholder left in {concrete}");
        let body = (method == "POST").then_some(&b"{}"[..]);
        let r = host.request(
            method,
            &concrete,
            &[("content-type", "application/json")],
            body,
        );
        let text = r.text();
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {text}"
        );
        assert!(
            !(r.status == StatusCode::NOT_FOUND && text.contains(NO_ROUTE)),
            "{method} {concrete} is documented but not served: {text}"
        );
        // Its status is one the document lists for it.
        let responses = &spec["paths"][path][method.to_lowercase()]["responses"];
        assert!(
            responses.get(r.status.as_str()).is_some(),
            "{method} {concrete} answered {} which its operation does not list: {text}",
            r.status
        );
    }

    // README's route table names every route.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let table = readme
        .split("## HTTP API")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has an HTTP API section");
    for (method, path) in ROUTES {
        let named = [format!("`{method} {path}`"), format!("`{method} {path}?")];
        assert!(
            named.iter().any(|n| table.contains(n.as_str())),
            "README's HTTP API table does not name `{method} {path}`"
        );
    }
}

#[test]
fn docs_page_loads_only_same_origin_assets_that_answer() {
    let host = host();
    let page = host.request("GET", "/docs", &[], None);
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.header("content-type")
    );
    let html = page.text();
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for rest in html.split(attr).skip(1) {
            assets.push(rest.split('"').next().unwrap().to_string());
        }
    }
    assert!(assets.len() >= 3, "{html}");
    for asset in &assets {
        assert!(
            asset.starts_with('/') && !asset.starts_with("//"),
            "/docs references {asset}, which is not same-origin"
        );
        let r = host.request("GET", asset, &[], None);
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert!(!r.body.is_empty(), "{asset}");
        let ty = r.header("content-type").unwrap();
        if asset.ends_with(".js") {
            assert!(ty.starts_with("text/javascript"), "{asset}: {ty}");
        } else if asset.ends_with(".css") {
            assert!(ty.starts_with("text/css"), "{asset}: {ty}");
        }
        let text = r.text();
        assert!(
            !text.contains("sourceMappingURL"),
            "{asset} points at a source map it does not serve"
        );
    }
    // The start script loads this host's document and nothing from outside.
    let init = host.get("/docs/init.js").1;
    assert!(init.contains("url: \"/openapi.json\""), "{init}");
    assert!(init.contains("validatorUrl: null"), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
    // An unknown asset is a 404 with a detail.
    let (status, body) = host.get("/docs/nope.js");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no documentation asset"), "{body}");
}

/// The invariant behind the list above: the HTTP layer registers routes only
/// through `OpenApiRouter::routes(routes!(...))`, which documents them in the
/// same step. A plain axum `.route(..)`, `route_service`, `nest_service` or
/// `axum::routing::*` method router in `host/src/export` would serve a path
/// the document does not know.
#[test]
fn the_http_layer_registers_routes_only_through_the_documenting_macro() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/export");
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(files.len() > 5, "{files:?}");
    let forbidden = [
        ".route(",
        ".route_service(",
        ".nest_service(",
        "routing::get",
        "routing::post",
        "routing::delete",
        "routing::any",
        "routing::{",
    ];
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for pattern in forbidden {
                if code.contains(pattern) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes registered without routes!(..) (so missing from /openapi.json):\n{}",
        found.join("\n")
    );
}
