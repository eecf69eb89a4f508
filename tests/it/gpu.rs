//! GPU sampling against the real binary and a fake NVML driver library
//! (`tests/fake-nvml`, installed by [`FakeNvml`]) that the host loads through
//! `nvml-wrapper` as it would a real `libnvidia-ml.so`: two devices with their
//! own values, a field a device does not support, a device whose queries fail,
//! no library at all, a library and a driver that appear after the host
//! started, device selection, XID and ECC counts, and a threshold rule firing
//! and resolving on GPU utilisation.

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::fake_nvml::code;
use wasmon_test_support::{
    FakeDevice, FakeDriver, FakeNvml, Host, HostOptions, guests, metric_value, promtool_check,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

/// A host sampling the fake's GPUs every 100 ms (system sampling off),
/// retrying an unavailable NVML every 200 ms.
fn start(fake: &FakeNvml, gpu: &str) -> Host {
    start_with(fake, gpu, HostOptions::new(BIN))
}

fn start_with(fake: &FakeNvml, gpu: &str, options: HostOptions) -> Host {
    let config = format!(
        "[sampling]\nenabled = false\n{}",
        fake.gpu_config(&format!(
            "interval = \"100ms\"\nretry_interval = \"200ms\"\n{gpu}"
        ))
    );
    Host::start(
        options
            .env("FAKE_NVML_CONFIG", fake.control_file())
            .config(&config),
    )
}

fn metrics(host: &Host) -> String {
    let (status, body) = host.get("/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn metric(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&metrics(host), name, labels)
}

/// Waits until the series has `value`.
#[track_caller]
fn wait_for_metric(host: &Host, name: &str, labels: &[(&str, &str)], value: f64) {
    let found = wasmon_test_support::try_wait_until(WAIT, || {
        (metric(host, name, labels) == Some(value)).then_some(())
    });
    assert!(
        found.is_some(),
        "{name}{labels:?} never became {value}; now {:?}\n{}",
        metric(host, name, labels),
        metrics(host)
    );
}

fn gpu_status(host: &Host) -> Value {
    host.get_json("/api/samplers/gpu")
}

/// Lines of the host's log containing `pattern`.
fn log_lines(host: &Host, pattern: &str) -> Vec<String> {
    host.logs()
        .lines()
        .filter(|l| l.contains(pattern))
        .map(String::from)
        .collect()
}

/// Every exported series of the device `gpu`, as `name{labels}` lines.
fn device_series(metrics: &str, gpu: &str) -> Vec<String> {
    let label = format!("gpu=\"{gpu}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("wasmon_gpu_") && l.contains(&label))
        .map(String::from)
        .collect()
}

#[test]
fn two_devices_report_their_own_values_and_an_unsupported_field_is_skipped_for_one() {
    let driver = FakeDriver::new(vec![
        FakeDevice::new(0),
        FakeDevice::new(1)
            .error("fan.0", code::NOT_SUPPORTED)
            .remove("power.limit"),
    ]);
    let (uuid0, uuid1) = (
        driver.devices[0].uuid().to_string(),
        driver.devices[1].uuid().to_string(),
    );
    let fake = FakeNvml::new(&driver);
    let host = start(&fake, "");
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "1")], 1.0);
    let text = metrics(&host);
    assert_eq!(promtool_check(&text), Ok(()), "{text}");

    let d0 = [("gpu", "0"), ("uuid", uuid0.as_str())];
    let d1 = [("gpu", "1"), ("uuid", uuid1.as_str())];
    let value = |name: &str, labels: &[(&str, &str)]| metric_value(&text, name, labels);
    #[track_caller]
    fn check(got: Option<f64>, expect: f64, what: &str) {
        let got = got.unwrap_or_else(|| panic!("{what} missing"));
        assert!((got - expect).abs() < 1e-9, "{what}: {got} != {expect}");
    }
    let gib = f64::from(1u32 << 30);
    for (labels, i) in [(&d0, 0.0), (&d1, 1.0)] {
        let what = |name: &str| format!("{name} of gpu {i}");
        check(value("wasmon_gpu_up", labels), 1.0, &what("up"));
        check(
            value("wasmon_gpu_utilization_ratio", labels),
            0.25 + 0.30 * i,
            &what("utilization"),
        );
        check(
            value("wasmon_gpu_memory_utilization_ratio", labels),
            0.10 + 0.05 * i,
            &what("memory utilization"),
        );
        check(
            value("wasmon_gpu_memory_used_bytes", labels),
            (10.0 + 10.0 * i) * gib,
            &what("memory used"),
        );
        check(
            value("wasmon_gpu_memory_free_bytes", labels),
            (70.0 - 10.0 * i) * gib,
            &what("memory free"),
        );
        check(
            value("wasmon_gpu_memory_total_bytes", labels),
            80.0 * gib,
            &what("memory total"),
        );
        check(
            value("wasmon_gpu_temperature_celsius", labels),
            40.0 + 10.0 * i,
            &what("temperature"),
        );
        check(
            value("wasmon_gpu_power_usage_watts", labels),
            100.0 + 50.0 * i,
            &what("power"),
        );
        check(
            value("wasmon_gpu_energy_joules_total", labels),
            1000.0 * (i + 1.0),
            &what("energy"),
        );
        check(
            value("wasmon_gpu_sm_clock_hertz", labels),
            (1400.0 + 100.0 * i) * 1e6,
            &what("SM clock"),
        );
        check(
            value("wasmon_gpu_memory_clock_hertz", labels),
            2600e6,
            &what("memory clock"),
        );
        check(
            value("wasmon_gpu_pcie_transmit_bytes_per_second", labels),
            1000.0 * (i + 1.0) * 1024.0,
            &what("PCIe tx"),
        );
        check(
            value("wasmon_gpu_pcie_receive_bytes_per_second", labels),
            2000.0 * (i + 1.0) * 1024.0,
            &what("PCIe rx"),
        );
        check(
            value("wasmon_gpu_performance_state", labels),
            i,
            &what("P-state"),
        );
        let mut ecc = labels.to_vec();
        ecc.push(("type", "corrected"));
        check(
            value("wasmon_gpu_ecc_errors_total", &ecc),
            i,
            &what("corrected ECC"),
        );
    }
    // The unsupported fields: absent for device 1 only.
    check(
        value("wasmon_gpu_fan_speed_ratio", &[("gpu", "0"), ("fan", "0")]),
        0.30,
        "fan of gpu 0",
    );
    check(
        value("wasmon_gpu_power_limit_watts", &d0),
        700.0,
        "power limit of gpu 0",
    );
    assert_eq!(value("wasmon_gpu_fan_speed_ratio", &d1), None, "{text}");
    assert_eq!(value("wasmon_gpu_power_limit_watts", &d1), None, "{text}");
    check(
        value(
            "wasmon_gpu_info",
            &[
                ("gpu", "1"),
                ("uuid", &uuid1),
                ("name", "Fake GPU 1"),
                ("pci_bus_id", "00000000:02:00.0"),
                ("driver_version", "550.54.15"),
            ],
        ),
        1.0,
        "info of gpu 1",
    );
    check(value("wasmon_gpu_devices", &[]), 2.0, "device count");
    check(
        value("wasmon_sampler_up", &[("sampler", "gpu")]),
        1.0,
        "sampler up",
    );

    // The API: the sampler's status, and the samples like any other's.
    let status = gpu_status(&host);
    assert_eq!(status["available"], true, "{status}");
    assert_eq!(status["up"], true, "{status}");
    assert_eq!(status["reason"], Value::Null, "{status}");
    assert_eq!(status["driver_version"], "550.54.15");
    assert_eq!(status["devices"][0]["unsupported"], serde_json::json!([]));
    assert_eq!(
        status["devices"][1]["unsupported"],
        serde_json::json!(["fan_speed", "power_limit"]),
        "{status}"
    );
    assert_eq!(status["devices"][1]["name"], "Fake GPU 1");
    let samples = host.get_json("/api/samples?name=wasmon_gpu_utilization_ratio&gpu=1");
    let samples = samples["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0]["value"], 0.55);
    assert_eq!(samples[0]["labels"]["uuid"], uuid1.as_str());
    let (status, body) = host.get("/api/samples");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"detail\""), "{body}");

    // Values are read live: a change in the driver shows at the next sample.
    fake.set(&FakeDriver::new(vec![
        FakeDevice::new(0).set("temperature", 77),
        driver.devices[1].clone(),
    ]));
    wait_for_metric(
        &host,
        "wasmon_gpu_temperature_celsius",
        &[("gpu", "0")],
        77.0,
    );
    assert_eq!(
        log_lines(&host, "GPU field").len(),
        0,
        "an unsupported field is not an error"
    );
}

#[test]
fn a_device_whose_queries_fail_is_down_and_does_not_hide_the_other() {
    let healthy = FakeDriver::new(vec![FakeDevice::new(0), FakeDevice::new(1)]);
    let uuid1 = healthy.devices[1].uuid().to_string();
    let fake = FakeNvml::new(&healthy);
    let host = start(&fake, "");
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "1")], 1.0);

    // Device 1 falls off the bus: every query answers GPU_IS_LOST.
    fake.set(&FakeDriver::new(vec![
        FakeDevice::new(0).set("utilization.gpu", 40),
        FakeDevice::new(1).fail(code::GPU_IS_LOST),
    ]));
    wait_for_metric(
        &host,
        "wasmon_gpu_up",
        &[("gpu", "1"), ("uuid", &uuid1)],
        0.0,
    );
    wait_for_metric(&host, "wasmon_gpu_utilization_ratio", &[("gpu", "0")], 0.40);
    let text = metrics(&host);
    assert_eq!(promtool_check(&text), Ok(()), "{text}");
    assert_eq!(
        device_series(&text, "1"),
        vec![format!("wasmon_gpu_up{{gpu=\"1\",uuid=\"{uuid1}\"}} 0")],
        "a down device keeps only its up series"
    );
    assert!(device_series(&text, "0").len() > 15, "{text}");
    assert_eq!(
        metric_value(&text, "wasmon_gpu_up", &[("gpu", "0")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "wasmon_sampler_up", &[("sampler", "gpu")]),
        Some(0.0),
        "not every device answered"
    );
    let status = gpu_status(&host);
    assert_eq!(status["available"], true);
    assert_eq!(status["devices"][0]["up"], true);
    assert_eq!(status["devices"][1]["up"], false);
    let reason = status["devices"][1]["reason"].as_str().unwrap();
    assert!(reason.contains("fell off the bus"), "{reason}");
    assert!(
        status["reason"].as_str().unwrap().contains("gpu 1"),
        "{status}"
    );

    // Logged once, not once per sample.
    let runs = status["runs"].as_u64().unwrap();
    host.wait_until(WAIT, || {
        (gpu_status(&host)["runs"].as_u64().unwrap() >= runs + 5).then_some(())
    });
    assert_eq!(log_lines(&host, "GPU down").len(), 1, "{}", host.logs());

    // Back on the bus.
    fake.set(&healthy);
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "1")], 1.0);
    wait_for_metric(&host, "wasmon_sampler_up", &[("sampler", "gpu")], 1.0);
    host.wait_for_log("GPU recovered", WAIT);
}

#[test]
fn a_device_that_answers_nothing_is_down_too() {
    // The UUID answers but every value query fails with UNKNOWN.
    let mut broken = FakeDevice::new(1);
    for key in wasmon_test_support::fake_nvml::VALUE_KEYS {
        broken = broken.error(key, code::UNKNOWN);
    }
    let fake = FakeNvml::new(&FakeDriver::new(vec![FakeDevice::new(0), broken]));
    let host = start(&fake, "");
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "1")], 0.0);
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "0")], 1.0);
    let text = metrics(&host);
    assert_eq!(device_series(&text, "1").len(), 1, "{text}");
    let reason = gpu_status(&host)["devices"][1]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.starts_with("every query failed"), "{reason}");
}

#[test]
fn one_failing_field_is_skipped_and_reported_while_the_device_stays_up() {
    let fake = FakeNvml::new(&FakeDriver::new(vec![
        FakeDevice::new(0).error("temperature", code::UNKNOWN),
    ]));
    let host = start(&fake, "");
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "0")], 1.0);
    let text = metrics(&host);
    assert_eq!(
        metric_value(&text, "wasmon_gpu_temperature_celsius", &[("gpu", "0")]),
        None
    );
    assert!(metric_value(&text, "wasmon_gpu_utilization_ratio", &[("gpu", "0")]).is_some());
    let status = gpu_status(&host);
    assert!(
        status["devices"][0]["failing"]["temperature"].is_string(),
        "{status}"
    );
    assert_eq!(status["devices"][0]["up"], true);
    // Logged once, not at every sample.
    let runs = status["runs"].as_u64().unwrap();
    host.wait_until(WAIT, || {
        (gpu_status(&host)["runs"].as_u64().unwrap() >= runs + 5).then_some(())
    });
    assert_eq!(
        log_lines(&host, "GPU field failed").len(),
        1,
        "{}",
        host.logs()
    );
}

#[test]
fn without_a_library_the_host_runs_and_picks_up_a_driver_that_appears_later() {
    let driver = FakeDriver::new(vec![FakeDevice::new(0)]);
    let fake = FakeNvml::without_library(&driver);
    // `auto`, as on a machine that may or may not have a GPU.
    let host = start(&fake, "enabled = \"auto\"");
    assert_eq!(host.get("/healthz").0, 200);
    wait_for_metric(&host, "wasmon_sampler_up", &[("sampler", "gpu")], 0.0);
    let status = gpu_status(&host);
    assert_eq!(status["enabled"], true);
    assert_eq!(status["available"], false);
    assert_eq!(status["up"], false);
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "cannot load the NVML library {}",
            fake.library().display()
        )),
        "{reason}"
    );
    assert_eq!(status["interval_seconds"], 0.2, "the retry interval");
    let text = metrics(&host);
    assert_eq!(promtool_check(&text), Ok(()), "{text}");
    assert!(!text.contains("wasmon_gpu_"), "{text}");

    // Retried on its interval, logged once, at info level under `auto`.
    host.wait_until(WAIT, || {
        (gpu_status(&host)["runs"].as_u64().unwrap() >= 5).then_some(())
    });
    let lines = log_lines(&host, "GPU sampling unavailable");
    assert_eq!(lines.len(), 1, "{}", host.logs());
    assert!(lines[0].contains("INFO"), "{}", lines[0]);

    // The library appears, but the driver is not loaded yet: a new reason,
    // logged once as a warning (a library without its driver is worth one).
    fake.set(&driver.clone().init_error(code::DRIVER_NOT_LOADED));
    fake.install();
    host.wait_until(WAIT, || {
        let status = gpu_status(&host);
        status["reason"]
            .as_str()
            .is_some_and(|r| r.contains("driver is not loaded"))
            .then_some(status)
    });
    let runs = gpu_status(&host)["runs"].as_u64().unwrap();
    host.wait_until(WAIT, || {
        (gpu_status(&host)["runs"].as_u64().unwrap() >= runs + 3).then_some(())
    });
    let lines = log_lines(&host, "GPU sampling unavailable");
    assert_eq!(lines.len(), 2, "{}", host.logs());
    assert!(lines[1].contains("WARN"), "{}", lines[1]);

    // The driver loads: picked up at the next retry.
    fake.set(&driver);
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "0")], 1.0);
    wait_for_metric(&host, "wasmon_sampler_up", &[("sampler", "gpu")], 1.0);
    let status = gpu_status(&host);
    assert_eq!(status["available"], true);
    assert_eq!(status["reason"], Value::Null);
    assert_eq!(status["interval_seconds"], 0.1, "the sampling interval");
    host.wait_for_log("GPU sampling available", WAIT);
    assert_eq!(log_lines(&host, "GPU sampling unavailable").len(), 2);
}

#[test]
fn the_seed_variable_turns_gpu_sampling_on_or_off() {
    let fake = FakeNvml::without_library(&FakeDriver::new(vec![FakeDevice::new(0)]));
    // MONITORING_GPU_ENABLED=true: a missing library is a warning.
    let host = start_with(
        &fake,
        "enabled = \"auto\"",
        HostOptions::new(BIN).env("MONITORING_GPU_ENABLED", "true"),
    );
    let line = host.wait_for_log("GPU sampling unavailable", WAIT);
    assert!(line.contains("WARN"), "{line}");
    drop(host);

    // MONITORING_GPU_ENABLED=false: no GPU sampler at all, even with a library.
    fake.install();
    let host = start_with(
        &fake,
        "",
        HostOptions::new(BIN).env("MONITORING_GPU_ENABLED", "false"),
    );
    let status = host.wait_until(WAIT, || {
        let list = host.get_json("/api/samplers");
        list["samplers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "gpu")
            .cloned()
    });
    assert_eq!(status["enabled"], false, "{status}");
    assert_eq!(status["reason"], "disabled by gpu.enabled = false");
    assert!(!metrics(&host).contains("sampler=\"gpu\""));
    host.wait_for_log("GPU sampling disabled", WAIT);
    let (code, body) = host.get("/api/samplers/nope");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"detail\""), "{body}");
}

#[test]
fn devices_are_selected_by_index_or_uuid() {
    let driver = FakeDriver::new((0..3).map(FakeDevice::new).collect());
    let uuid2 = driver.devices[2].uuid().to_string();
    let fake = FakeNvml::new(&driver);
    let host = start(
        &fake,
        &format!("devices = [\"1\", \"{uuid2}\", \"GPU-does-not-exist\"]"),
    );
    wait_for_metric(
        &host,
        "wasmon_gpu_up",
        &[("gpu", "2"), ("uuid", &uuid2)],
        1.0,
    );
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "1")], 1.0);
    // Not found: no index to label it with, only the UUID asked for.
    wait_for_metric(
        &host,
        "wasmon_gpu_up",
        &[("uuid", "GPU-does-not-exist")],
        0.0,
    );
    let text = metrics(&host);
    assert!(device_series(&text, "0").is_empty(), "{text}");
    assert_eq!(
        metric_value(&text, "wasmon_gpu_temperature_celsius", &[("gpu", "2")]),
        Some(60.0)
    );
    let status = gpu_status(&host);
    assert_eq!(status["devices"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(status["devices"][2]["reason"], "no such device");
}

#[test]
fn xid_and_ecc_errors_are_counted() {
    let driver = FakeDriver::new(vec![FakeDevice::new(0), FakeDevice::new(1).remove("xid")]);
    let fake = FakeNvml::new(&driver);
    let host = start(&fake, "");
    wait_for_metric(&host, "wasmon_gpu_xid_errors_total", &[("gpu", "0")], 0.0);
    wait_for_metric(&host, "wasmon_gpu_up", &[("gpu", "1")], 1.0);
    assert_eq!(
        metric(&host, "wasmon_gpu_xid_errors_total", &[("gpu", "1")]),
        None,
        "no XID events on device 1"
    );

    fake.set(&FakeDriver::new(vec![
        FakeDevice::new(0)
            .set("xid", "79,13")
            .set("ecc.uncorrected", 2),
        driver.devices[1].clone(),
    ]));
    wait_for_metric(&host, "wasmon_gpu_xid_errors_total", &[("gpu", "0")], 2.0);
    wait_for_metric(
        &host,
        "wasmon_gpu_ecc_errors_total",
        &[("gpu", "0"), ("type", "uncorrected")],
        2.0,
    );
    let device = &gpu_status(&host)["devices"][0];
    assert_eq!(device["xid_errors"], 2, "{device}");
    assert_eq!(device["last_xid"], 13, "{device}");
    // One warning per event (the log reaches the harness through a pipe: wait).
    host.wait_until(WAIT, || {
        (log_lines(&host, "GPU XID error").len() >= 2).then_some(())
    });
    assert_eq!(
        log_lines(&host, "GPU XID error").len(),
        2,
        "{}",
        host.logs()
    );
    assert_eq!(promtool_check(&metrics(&host)), Ok(()));
}

const GPU_BUSY: &str = r#"
interval = "100ms"
for = "300ms"
select = ["wasmon_gpu_utilization_ratio"]
[config]
[[config.checks]]
name = "gpu_busy"
metric = "wasmon_gpu_utilization_ratio"
warn = 0.90
summary_labels = ["gpu"]
"#;

fn gpu_busy_alert(host: &Host) -> Option<Value> {
    host.get_json("/api/alerts")["alerts"]
        .as_array()
        .and_then(|alerts| alerts.iter().find(|a| a["name"] == "gpu_busy").cloned())
}

#[test]
fn a_threshold_rule_fires_and_resolves_on_gpu_utilization() {
    let driver = FakeDriver::new(vec![FakeDevice::new(0), FakeDevice::new(1)]);
    let fake = FakeNvml::new(&driver);
    let host = start_with(
        &fake,
        "",
        HostOptions::new(BIN)
            .plugin("threshold", guests::RULE_THRESHOLD)
            .manifest("threshold", GPU_BUSY),
    );
    host.wait_ready(WAIT);
    // Both GPUs evaluated and fine.
    host.wait_until(WAIT, || {
        let checks = host.get_json("/api/alerts")["checks"].clone();
        let ok = checks
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "gpu_busy" && c["status"] == "OK")
            .count();
        (ok == 2).then_some(())
    });
    assert_eq!(gpu_busy_alert(&host), None);

    // GPU 1 at 95 %: pending, then firing after `for`.
    fake.set(&FakeDriver::new(vec![
        driver.devices[0].clone(),
        FakeDevice::new(1).set("utilization.gpu", 95),
    ]));
    let firing = host.wait_until(WAIT, || {
        gpu_busy_alert(&host).filter(|a| a["state"] == "firing")
    });
    assert_eq!(firing["labels"]["gpu"], "1", "{firing}");
    assert_eq!(firing["severity"], "warning");
    assert_eq!(firing["value"], 0.95);
    assert_eq!(host.get_json("/api/alerts")["overall"], "WARNING");

    // Back to 40 %: resolved.
    fake.set(&FakeDriver::new(vec![
        driver.devices[0].clone(),
        FakeDevice::new(1).set("utilization.gpu", 40),
    ]));
    host.wait_until(WAIT, || {
        gpu_busy_alert(&host).filter(|a| a["state"] == "resolved")
    });
    assert_eq!(host.get_json("/api/alerts")["overall"], "OK");
}
