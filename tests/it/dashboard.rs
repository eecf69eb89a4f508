//! The dashboard at `/` in a real browser: headless Chromium driven by
//! `chromedriver` over plain W3C WebDriver JSON (`browser`). The page loads
//! with no console error, lists the plugins the host loaded, draws history
//! charts with data (GPU too, over the fake NVML), shows a hot reload without
//! a page refresh, and reloads a plugin with the admin token (and shows the
//! refusal without it); stops and starts one through the supervisor; shows
//! a rule's page with its shadow diff and a backtest timeline.
//! Screenshots (laptop and phone) are saved to `target/test-artifacts/`.
//! Without a browser the headers of the page and assets are checked too.

mod browser;

use browser::{Browser, errors};
use serde_json::json;
use std::time::Duration;
use wasmon_test_support::{
    FakeDevice, FakeDriver, FakeNvml, Host, HostOptions, StatusCode, guests, wait_until,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "dash-admin-s3cret";

/// A rule over the host's CPU and the counter's series: one check always
/// fires (warn at 0), so the alert panel has something to show.
const RULE: &str = r#"kind = "rule"
interval = "500ms"
for = "0s"
select = ["wasmon_cpu_usage_ratio", "fixture_collected"]
[[config.checks]]
name = "collected_high"
metric = "fixture_collected"
warn = 0
[[config.checks]]
name = "cpu_usage"
metric = "wasmon_cpu_usage_ratio"
warn = 0.8
alert = 0.9
"#;

/// A host with a collector (`counter`) and a rule (`cpu_rule`), one-second
/// history buckets so charts fill fast, no GPU, and `extra` config.
fn start(extra: &str) -> Host {
    start_with(HostOptions::new(BIN), "[gpu]\nenabled = false\n", extra)
}

fn start_with(options: HostOptions, gpu: &str, extra: &str) -> Host {
    let host = Host::start(
        options
            .config(&format!(
                "[sampling]\ninterval = \"500ms\"\n[store]\nhistory_resolution = \"1s\"\n{gpu}{extra}"
            ))
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"300ms\"\n")
            .plugin("cpu_rule", guests::RULE_THRESHOLD)
            .manifest("cpu_rule", RULE),
    );
    host.wait_ready(WAIT);
    host
}

// ---- the tests -----------------------------------------------------------

#[test]
fn page_loads_without_console_errors_and_lists_the_loaded_plugins() {
    let host = start("");
    let browser = Browser::open(1440, 1000);
    browser.dashboard(&host);
    let rows = wait_until(WAIT, || {
        let rows = browser.plugin_rows();
        (rows.len() == 2 && rows.iter().all(|(_, s, _)| s == "running")).then_some(rows)
    });
    let names: Vec<&str> = rows.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["counter", "cpu_rule"]);
    assert_eq!(browser.js("return document.title"), "wasmon");
    // Some rounds of polling and pushes happen before the log is read.
    wait_until(WAIT, || {
        (browser.js("return document.querySelector('#link').dataset.state") == "live").then_some(())
    });
    // Live updates arrive (pushed over /ws) before the log is read.
    let before = browser.points("cpu");
    wait_until(WAIT, || (browser.points("cpu") > before).then_some(()));
    let log = browser.log();
    assert!(errors(&log).is_empty(), "console errors: {log:#?}");
    // The log is read for real: an error the page makes shows up.
    browser.js("console.error('dashboard-probe-error')");
    let log = browser.log();
    assert!(
        errors(&log)
            .iter()
            .any(|(_, m)| m.contains("dashboard-probe-error")),
        "{log:#?}"
    );
}

#[test]
fn charts_have_data_points_and_a_screenshot_is_saved() {
    // With a (fake) GPU, so the screenshot shows every chart.
    let fake = FakeNvml::new(&FakeDriver::new(vec![FakeDevice::new(0)]));
    let host = start_with(
        HostOptions::new(BIN).env("FAKE_NVML_CONFIG", fake.control_file()),
        &fake.gpu_config("interval = \"500ms\""),
        "",
    );
    for service in ["checkout", "billing"] {
        let (status, _) =
            host.post_json("/heartbeat", &json!({"service": service, "status": "ok"}));
        assert_eq!(status, StatusCode::OK);
    }
    let browser = Browser::open(1440, 1500);
    browser.dashboard(&host);
    let points = |chart: &str| browser.points(chart);
    wait_until(WAIT, || {
        (points("cpu") >= 3 && points("memory") >= 3 && points("plugin") >= 3 && points("gpu") >= 3)
            .then_some(())
    });
    // uPlot drew them: a canvas in each chart.
    let canvases = browser.js("return document.querySelectorAll('.chart canvas').length");
    assert!(canvases.as_u64().unwrap() >= 4, "{canvases}");
    // The plugin chart follows one of the counter's series.
    let metric = browser.js("return document.querySelector('#plugin-metric').value");
    assert!(metric.as_str().unwrap().starts_with("fixture_"), "{metric}");
    // The other panels: the firing alert, the services, the events.
    wait_until(WAIT, || {
        let v = browser.js("return [document.querySelectorAll('#alerts li[data-state=firing]').length, document.querySelectorAll('#services li[data-service]').length, document.querySelectorAll('#events tbody tr td.mono').length]");
        (v[0].as_u64() >= Some(1) && v[1] == 2 && v[2].as_u64() >= Some(1)).then_some(())
    });
    let path = browser.screenshot("dashboard.png");
    eprintln!("screenshot: {}", path.display());
    // And on a phone-sized screen: no horizontal page scroll.
    browser.cmd(
        "POST",
        "/window/rect",
        Some(&json!({"width": 390, "height": 1600})),
    );
    let overflow = wait_until(WAIT, || {
        let v = browser.js("return [document.documentElement.scrollWidth, window.innerWidth]");
        let (scroll, inner) = (v[0].as_u64()?, v[1].as_u64()?);
        (inner <= 400).then_some(scroll.saturating_sub(inner))
    });
    assert_eq!(overflow, 0, "the page scrolls sideways on a phone");
    browser.screenshot("dashboard-phone.png");
    assert!(errors(&browser.log()).is_empty());
}

#[test]
fn a_hot_reload_shows_up_without_a_page_refresh() {
    let host = start("");
    let browser = Browser::open(1280, 900);
    browser.dashboard(&host);
    wait_until(WAIT, || {
        (browser.generation("counter") == Some(1)).then_some(())
    });
    // Pushed over /ws: the page says so, and polls only every 30 s then.
    wait_until(WAIT, || {
        (browser.js("return document.querySelector('#link').dataset.state") == "live").then_some(())
    });
    browser.js("window.__sameDocument = 42");
    host.plugins()
        .write_manifest("counter", "interval = \"250ms\"\n");
    wait_until(Duration::from_secs(20), || {
        (browser.generation("counter") == Some(2)).then_some(())
    });
    assert_eq!(
        browser.js("return window.__sameDocument"),
        42,
        "the page was reloaded"
    );
    assert_eq!(browser.generation("cpu_rule"), Some(1));
}

#[test]
fn reload_from_the_page_needs_the_admin_token() {
    let host = start(&format!("[server]\nadmin_token = \"{TOKEN}\"\n"));
    let browser = Browser::open(1280, 900);
    browser.dashboard(&host);
    wait_until(WAIT, || {
        (browser.generation("counter") == Some(1)).then_some(())
    });
    // A token is set and none entered: the page polls (no /ws attempt)
    // and nothing fails.
    assert_eq!(
        browser.js("return document.querySelector('#link').dataset.state"),
        "polling"
    );
    let log = browser.log();
    assert!(errors(&log).is_empty(), "console errors: {log:#?}");
    // Locked: no action buttons.
    assert_eq!(
        browser.js("return document.querySelectorAll('#plugins button').length"),
        0
    );

    // A wrong token: the host refuses, the page says so.
    browser.type_into("#token", "not-the-token");
    browser.click("#token-save");
    wait_until(WAIT, || {
        (browser.js("return document.querySelectorAll('#plugins tr[data-plugin=counter] button[data-action=reload]').length") == 1).then_some(())
    });
    browser.click("#plugins tr[data-plugin=counter] button[data-action=reload]");
    let (kind, text) = wait_until(WAIT, || {
        browser
            .toast()
            .filter(|(_, t)| t.contains("Reload counter"))
    });
    assert_eq!(kind, "error", "{text}");
    assert!(text.contains("refused") && text.contains("token"), "{text}");
    assert_eq!(browser.generation("counter"), Some(1));

    // The right token: reloaded.
    browser.click("#token-clear");
    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    let mark = host.log_mark();
    wait_until(WAIT, || {
        (browser.js("return document.querySelectorAll('#plugins tr[data-plugin=counter] button[data-action=reload]').length") == 1).then_some(())
    });
    browser.click("#plugins tr[data-plugin=counter] button[data-action=reload]");
    wait_until(WAIT, || {
        browser
            .toast()
            .filter(|(k, t)| k == "ok" && t.contains("Reload counter"))
    });
    wait_until(WAIT, || {
        (browser.generation("counter") == Some(2)).then_some(())
    });
    host.wait_for_log_since(mark, "plugin=counter generation=2", WAIT);
}

#[test]
fn stop_and_start_from_the_page_use_the_supervisor_with_the_admin_token() {
    let host = start(&format!("[server]\nadmin_token = \"{TOKEN}\"\n"));
    let browser = Browser::open(1280, 900);
    browser.dashboard(&host);
    wait_until(WAIT, || {
        (browser.generation("counter") == Some(1)).then_some(())
    });
    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    let row = "#plugins tr[data-plugin=counter]";
    let status = || {
        browser.js(&format!(
            "return document.querySelector('{row}').dataset.status"
        ))
    };
    for (action, label, after) in [
        ("stop", "Stop counter", "stopped"),
        ("start", "Start counter", "running"),
    ] {
        let button = format!("{row} button[data-action={action}]");
        wait_until(WAIT, || {
            (browser.js(&format!(
                "return document.querySelectorAll('{button}').length"
            )) == 1)
                .then_some(())
        });
        browser.click(&button);
        wait_until(WAIT, || {
            browser
                .toast()
                .filter(|(k, t)| k == "ok" && t.contains(label))
        });
        wait_until(WAIT, || (status() == after).then_some(()));
        assert_eq!(host.get_json("/api/plugins/counter")["status"], after);
    }
    let log = browser.log();
    assert!(errors(&log).is_empty(), "console errors: {log:#?}");
}

#[test]
fn page_and_assets_are_same_origin_with_csp_cache_headers_and_etags() {
    let host = Host::start(HostOptions::new(BIN).config("[gpu]\nenabled = false\n"));
    let page = host.request("GET", "/", &[], None);
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap().to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self' ws: wss:",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    // Every src/href of the page is this host's and answers.
    let html = page.text();
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = part.split('"').next().unwrap();
            assert!(
                url.starts_with('/') && !url.starts_with("//"),
                "{url} is not same-origin"
            );
            assets.push(url.to_string());
        }
    }
    assert!(
        assets.iter().any(|a| a.starts_with("/ui/uPlot-")),
        "{assets:?}"
    );
    for asset in assets.iter().filter(|a| a.starts_with("/ui/")) {
        let r = host.request("GET", asset, &[], None);
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        let etag = r
            .header("etag")
            .unwrap_or_else(|| panic!("{asset}: no etag"))
            .to_string();
        assert!(r.header("cache-control").is_some(), "{asset}");
        let again = host.request("GET", asset, &[("if-none-match", &etag)], None);
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{asset}");
        assert!(again.text().is_empty());
    }
    for (asset, kind) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
    ] {
        assert_eq!(
            host.request("GET", asset, &[], None).header("content-type"),
            Some(kind)
        );
    }
    let vendored = host.request("GET", "/ui/uPlot-1.6.32.iife.min.js", &[], None);
    assert!(
        vendored
            .header("cache-control")
            .unwrap()
            .contains("immutable")
    );
    let (status, body) = host.get("/ui/nope.js");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"detail\""), "{body}");
    let settings = host.get_json("/ui/config.json");
    assert_eq!(settings["admin_token_required"], false);
    assert_eq!(settings["history_window_seconds"], 3600.0);
}

#[test]
fn a_gpu_chart_appears_with_a_gpu_and_shows_each_device() {
    let fake = FakeNvml::new(&FakeDriver::new(vec![
        FakeDevice::new(0),
        FakeDevice::new(1),
    ]));
    let host = start_with(
        HostOptions::new(BIN).env("FAKE_NVML_CONFIG", fake.control_file()),
        &fake.gpu_config("interval = \"200ms\""),
        "",
    );
    let browser = Browser::open(1440, 1000);
    browser.dashboard(&host);
    wait_until(WAIT, || {
        (browser.js("return document.querySelector('#gpu-card').hidden") == false
            && browser.points("gpu") >= 4)
            .then_some(())
    });
    let series = browser.js("return document.querySelector('[data-chart=\"gpu\"]').dataset.series");
    assert_eq!(series, "2", "one line per device");
    let log = browser.log();
    assert!(errors(&log).is_empty(), "console errors: {log:#?}");
}

#[test]
fn a_rules_page_shows_its_shadow_diff_and_a_backtest_timeline() {
    // The shadow warns at 0 on the counter too, under another name: only it
    // raises `shadow_only`, so the diff has an entry.
    let shadow = RULE.replace("collected_high", "shadow_only");
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!(
                "[sampling]\ninterval = \"500ms\"\n[store]\nhistory_resolution = \"1s\"\n[gpu]\nenabled = false\n[server]\nadmin_token = \"{TOKEN}\"\n"
            ))
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"300ms\"\n")
            .plugin("cpu_rule", guests::RULE_THRESHOLD)
            .manifest("cpu_rule", RULE)
            .manifest("cpu_rule.shadow", &shadow),
    );
    host.wait_ready(WAIT);
    let browser = Browser::open(1280, 900);
    browser.dashboard(&host);
    wait_until(WAIT, || {
        (browser.generation("cpu_rule") == Some(1)).then_some(())
    });
    // The rule's name opens its page.
    browser.click("#plugins a[data-rule=cpu_rule]");
    wait_until(WAIT, || {
        (browser.js("return document.querySelectorAll('#rule-diff tr[data-kind]').length") != 0)
            .then_some(())
    });
    let diff = browser.js("return document.querySelector('#rule-diff tbody').textContent");
    assert!(
        diff.as_str().is_some_and(|t| t.contains("shadow_only")),
        "{diff}"
    );
    let line = browser.js("return document.querySelector('#rule-shadow').textContent");
    assert!(
        line.as_str().is_some_and(|t| t.contains("running")),
        "{line}"
    );

    // A backtest (admin) fills the timeline.
    browser.type_into("#token", TOKEN);
    browser.click("#token-save");
    wait_until(WAIT, || {
        (browser.js("return document.querySelector('#rule-backtest').hidden") == json!(false))
            .then_some(())
    });
    browser.click("#rule-backtest");
    wait_until(WAIT, || {
        (browser.js("return document.querySelectorAll('#rule-timeline tr[data-state]').length")
            != 0)
            .then_some(())
    });
    let info = browser.js("return document.querySelector('#rule-backtest-info').textContent");
    assert!(
        info.as_str().is_some_and(|t| t.contains("shadow")),
        "{info}"
    );
    let log = browser.log();
    assert!(errors(&log).is_empty(), "console errors: {log:#?}");
}
