//! The shadow routes' refusals: bad inputs get a 4xx with a detail and
//! change nothing; writes need the admin token.

use super::{CONFIG, WAIT, options, request, threshold};
use wasmon_test_support::{Host, StatusCode, guests};

#[test]
fn bad_inputs_get_4xx_with_a_detail() {
    let host = Host::start(
        options(0.90, 0.2).config(&format!("{CONFIG}[store]\nhistory_window = \"15m\"\n")),
    );
    host.wait_ready(WAIT);
    let collector = std::fs::read(guests::GUEST_SERIES_REPLAY).unwrap();
    let check = |method: &str,
                 path: &str,
                 content_type: &str,
                 body: &[u8],
                 expected: StatusCode,
                 words: &str| {
        let (status, json) = request(&host, method, path, content_type, body);
        assert_eq!(status, expected, "{method} {path}: {json}");
        let detail = json["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail: {json}"));
        assert!(
            detail.contains(words),
            "{method} {path}: {detail:?} lacks {words:?}"
        );
    };
    let wasm = "application/wasm";
    // A collector as the shadow of a rule: refused, nothing left on disk.
    check(
        "POST",
        "/api/plugins/threshold/shadow",
        wasm,
        &collector,
        StatusCode::CONFLICT,
        "collector",
    );
    assert!(!host.dir().join("plugins.d/threshold.shadow.wasm").exists());
    // A shadow for a missing rule, and of a collector.
    check(
        "POST",
        "/api/plugins/nosuch/shadow",
        wasm,
        &collector,
        StatusCode::NOT_FOUND,
        "nosuch",
    );
    check(
        "POST",
        "/api/plugins/cpu/shadow",
        wasm,
        &collector,
        StatusCode::CONFLICT,
        "only rules",
    );
    // Corrupt, empty, the wrong type.
    check(
        "POST",
        "/api/plugins/threshold/shadow",
        wasm,
        b"not a component",
        StatusCode::UNPROCESSABLE_ENTITY,
        "",
    );
    check(
        "POST",
        "/api/plugins/threshold/shadow",
        wasm,
        b"",
        StatusCode::BAD_REQUEST,
        "empty",
    );
    check(
        "POST",
        "/api/plugins/threshold/shadow",
        "text/plain",
        b"x",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/wasm",
    );
    check(
        "POST",
        "/api/plugins/threshold/shadow",
        "application/toml",
        b"bogus_key = 1",
        StatusCode::UNPROCESSABLE_ENTITY,
        "bogus_key",
    );
    // No shadow: nothing to show, discard, promote or backtest; no rollback.
    check(
        "GET",
        "/api/plugins/threshold/shadow",
        "",
        b"",
        StatusCode::NOT_FOUND,
        "no shadow",
    );
    check(
        "DELETE",
        "/api/plugins/threshold/shadow",
        "",
        b"",
        StatusCode::NOT_FOUND,
        "no shadow",
    );
    check(
        "POST",
        "/api/plugins/threshold/shadow/promote",
        "",
        b"",
        StatusCode::NOT_FOUND,
        "no shadow",
    );
    check(
        "POST",
        "/api/plugins/threshold/rollback",
        "",
        b"",
        StatusCode::CONFLICT,
        "previous version",
    );
    check(
        "POST",
        "/api/plugins/threshold/backtest?version=shadow",
        "",
        b"",
        StatusCode::NOT_FOUND,
        "no shadow",
    );
    // Windows beyond store.history_window, bad steps and parameters.
    check(
        "POST",
        "/api/plugins/threshold/backtest?window=20m",
        "",
        b"",
        StatusCode::BAD_REQUEST,
        "store.history_window",
    );
    check(
        "POST",
        "/api/plugins/threshold/backtest?window=10m&step=0s",
        "",
        b"",
        StatusCode::BAD_REQUEST,
        "step",
    );
    check(
        "POST",
        "/api/plugins/threshold/backtest?version=other",
        "",
        b"",
        StatusCode::BAD_REQUEST,
        "version",
    );
    check(
        "POST",
        "/api/plugins/threshold/backtest?windows=1m",
        "",
        b"",
        StatusCode::BAD_REQUEST,
        "windows",
    );
    check(
        "POST",
        "/api/plugins/nosuch/backtest",
        "",
        b"",
        StatusCode::NOT_FOUND,
        "nosuch",
    );
    check(
        "POST",
        "/api/plugins/cpu/backtest",
        "",
        b"",
        StatusCode::CONFLICT,
        "only rules",
    );
    check(
        "GET",
        "/api/plugins/bad-name/shadow",
        "",
        b"",
        StatusCode::BAD_REQUEST,
        "invalid plugin name",
    );
    // The serving version never noticed.
    let plugin = host.get_json("/api/plugins/threshold");
    assert_eq!(plugin["generation"], 1);
    assert_eq!(plugin["status"], "running");
}

#[test]
fn shadow_writes_need_the_admin_token() {
    let host = Host::start(
        options(0.90, 0.2).config(&format!("{CONFIG}[server]\nadmin_token = \"secret\"\n")),
    );
    for (method, path) in [
        ("POST", "/api/plugins/threshold/shadow"),
        ("DELETE", "/api/plugins/threshold/shadow"),
        ("POST", "/api/plugins/threshold/shadow/promote"),
        ("POST", "/api/plugins/threshold/rollback"),
        ("POST", "/api/plugins/threshold/backtest"),
    ] {
        let (status, json) = request(
            &host,
            method,
            path,
            "application/toml",
            threshold(0.5).as_bytes(),
        );
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {json}");
        assert!(json["detail"].is_string());
    }
    assert!(!host.dir().join("plugins.d/threshold.shadow.toml").exists());
    // Reading the diff is not an admin route.
    assert_eq!(
        host.get("/api/plugins/threshold/shadow").0,
        StatusCode::NOT_FOUND
    );
}
