//! `wasmon plugin run FILE.wasm`: loads a component like `check` does and
//! calls it with real inputs, so authors iterate without a host:
//!
//! - a collector: `collect()`, its samples as a table or JSON;
//! - a rule: `evaluate()` on samples from a JSON file or a live host's
//!   `/api/samples` (selected by the manifest's `select`, as in a host), the
//!   host's services, and optional events; its alerts as a table or JSON;
//! - a sink: `deliver()` of built-in sample events or a file's, in batches
//!   of the manifest's `batch_size` filtered by its `events`; ok, or the
//!   delivery error and whether a host would retry it.
//!
//! The plugin's `host.log` lines and what it writes to stdout/stderr go to
//! stderr, so stdout holds only the result.

mod inputs;
pub(super) mod table;

use super::check::{ComponentArgs, Loaded, init_logging, load, print_guest_output, runtime};
use crate::model::{Event, Sample};
use crate::plugins::bindings::RuleAlert;
use crate::plugins::bindings::types::ServiceState;
use crate::plugins::{CallError, PluginKind, Standalone};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use table::{human_bytes, labels, millis};

/// `wasmon plugin run` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Samples file (--samples): the answer of `GET /api/samples` or just its list:
  {\"samples\": [{\"name\": \"disk_usage_ratio\", \"value\": 0.93,
                \"labels\": {\"mountpoint\": \"/var\"}, \"kind\": \"gauge\"}]}
  `kind` (gauge), `labels`, `help` and `timestamp_ms` may be left out; labels may
  also be [[\"name\", \"value\"], ...]. `wasmon plugin run COLLECTOR.wasm --json`
  writes this shape too. As in a host, the rule receives only the series its
  manifest's `select` matches.

Events file (--events): the answer of `GET /api/events` or just its list:
  {\"events\": [{\"event_type\": \"service.down\", \"service\": \"api\",
               \"severity\": \"critical\", \"detail\": \"no heartbeat for 95 s\"}]}
  `event_type` is required; `id`, `time_ms` and `source` are filled in when left
  out. Without --events a sink gets three built-in events: `service.down` (from
  heartbeats), `alert.firing` (from a rule) and `job.failed` (posted by a service).

Use `-` as FILE to read stdin. Exits 1 when a call fails.

Examples:
  wasmon plugin run my_collector/my_collector.wasm
  wasmon plugin run my_rule.wasm --from http://127.0.0.1:9400
  wasmon plugin run my_rule.wasm --samples samples.json --json
  wasmon plugin run my_sink.wasm --events events.json")]
pub struct RunArgs {
    #[command(flatten)]
    pub component: ComponentArgs,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Rules: evaluate on the live series of the host at URL (`GET
    /// URL/api/samples` for the manifest's `select`, and `GET
    /// URL/api/services`), e.g. http://127.0.0.1:9400.
    #[arg(long, value_name = "URL", conflicts_with = "samples")]
    pub from: Option<String>,
    /// Rules: evaluate on the samples in FILE (JSON, see below).
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// Sinks: deliver the events in FILE (JSON, see below) instead of the
    /// built-in ones. Rules: the events `evaluate` receives.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Call the plugin N times in a row (its state carries over, as in a host).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub times: u32,
}

pub fn run(args: RunArgs) -> Result<()> {
    init_logging();
    runtime()?.block_on(run_plugin(args))
}

/// The inputs of one kind's calls.
enum Inputs {
    Collect,
    Evaluate {
        samples: Vec<Sample>,
        services: Vec<ServiceState>,
        events: Vec<Event>,
    },
    Deliver {
        batches: Vec<Vec<Arc<Event>>>,
        events: usize,
    },
}

/// What one call returned.
struct Call {
    duration: Duration,
    memory_bytes: u64,
    result: Result<Value, CallError>,
    /// For people: the table or the one-line outcome.
    text: String,
}

async fn run_plugin(args: RunArgs) -> Result<()> {
    let Loaded {
        mut plugin,
        warnings,
    } = match load(&args.component).await {
        Ok(loaded) => loaded,
        Err((stage, error)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "file": args.component.wasm, "ok": false,
                        "stage": stage, "error": format!("{error:#}"),
                    }))?
                );
            }
            return Err(error.context(format!("the plugin did not load ({stage})")));
        }
    };
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    print_guest_output(&plugin, "init");
    let kind = plugin.kind();
    let report = plugin.report().clone();
    eprintln!(
        "loaded {} ({kind}, wasmon:plugin@{}): compile {} ({}), init {}, memory {}",
        report.name,
        report.wit.as_str(),
        millis(report.compile),
        report.compiler,
        millis(report.init),
        human_bytes(report.memory_bytes),
    );
    let inputs = inputs(&args, &plugin).await?;
    let mut calls = Vec::new();
    for n in 1..=args.times {
        let call = call(&mut plugin, &inputs).await;
        print_guest_output(&plugin, &format!("{} #{n}", kind.export()));
        if !args.json {
            if args.times > 1 {
                println!(
                    "-- {}() call {n} of {}, {}:",
                    kind.export(),
                    args.times,
                    millis(call.duration)
                );
            }
            print!("{}", call.text);
        }
        calls.push(call);
    }
    let failed = calls.iter().filter(|c| c.result.is_err()).count();
    if args.json {
        let loaded = json!({
            "plugin": report.name,
            "kind": kind,
            "wit": report.wit,
            "compile_ms": report.compile.as_secs_f64() * 1000.0,
            "init_ms": report.init.as_secs_f64() * 1000.0,
            "memory_bytes": report.memory_bytes,
        });
        print_json(loaded, kind, &inputs, &calls)?;
    } else if args.times == 1
        && let Some(call) = calls.first()
    {
        eprintln!(
            "{}() took {}; memory {}",
            kind.export(),
            millis(call.duration),
            human_bytes(call.memory_bytes)
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {} {}() call{} failed",
            calls.len(),
            kind.export(),
            if calls.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// Reads, fetches or builds what the plugin's calls receive.
async fn inputs(args: &RunArgs, plugin: &Standalone) -> Result<Inputs> {
    let kind = plugin.kind();
    let misplaced = [
        ("--from", args.from.is_some(), kind != PluginKind::Rule),
        (
            "--samples",
            args.samples.is_some(),
            kind != PluginKind::Rule,
        ),
        (
            "--events",
            args.events.is_some(),
            kind == PluginKind::Collector,
        ),
    ];
    if let Some((flag, _, _)) = misplaced.iter().find(|(_, given, wrong)| *given && *wrong) {
        bail!(
            "{flag} does not apply to {}: it is a {kind}, which gets {}",
            args.component.wasm.display(),
            match kind {
                PluginKind::Collector => "no input (`collect()`)",
                PluginKind::Rule => "samples, services and events",
                PluginKind::Sink => "events (--events FILE)",
            }
        );
    }
    let file_events = match &args.events {
        Some(path) => Some(inputs::events_from_file(path)?),
        None => None,
    };
    Ok(match kind {
        PluginKind::Collector => Inputs::Collect,
        PluginKind::Rule => {
            let select = &plugin.manifest().select;
            let (given, services) = match (&args.from, &args.samples) {
                (Some(url), _) => inputs::from_host(url, select).await?,
                (None, Some(path)) => (inputs::samples_from_file(path)?, Vec::new()),
                (None, None) => {
                    eprintln!(
                        "note: no samples given (--samples FILE or --from URL): evaluating on none"
                    );
                    (Vec::new(), Vec::new())
                }
            };
            if select.is_empty() && (args.from.is_some() || args.samples.is_some()) {
                eprintln!(
                    "note: the manifest has no `select`, so a host hands this rule no samples, and so does this run; add e.g. select = [\"my_metric_*\"] to the manifest"
                );
            }
            let total = given.len();
            let samples: Vec<Sample> = given
                .into_iter()
                .filter(|s| plugin.selects(&s.name))
                .collect();
            if total > samples.len() && !select.is_empty() {
                eprintln!(
                    "note: {} of {total} samples match the manifest's select = {select:?}; the rule gets those",
                    samples.len()
                );
            }
            Inputs::Evaluate {
                samples,
                services,
                events: file_events.unwrap_or_default(),
            }
        }
        PluginKind::Sink => {
            let events = file_events.unwrap_or_else(inputs::sample_events);
            let total = events.len();
            let wanted: Vec<Arc<Event>> = events
                .into_iter()
                .filter(|e| plugin.wants_event(&e.event_type))
                .map(Arc::new)
                .collect();
            if wanted.len() < total {
                eprintln!(
                    "note: the manifest's events = {:?} matches {} of the {total} events; the sink gets those",
                    plugin.manifest().events,
                    wanted.len()
                );
            }
            if wanted.is_empty() {
                eprintln!(
                    "note: delivering an empty batch, as a host does when the manifest's `tick` is due"
                );
            }
            let batch_size = plugin.manifest().batch_size.max(1);
            let mut batches: Vec<Vec<Arc<Event>>> =
                wanted.chunks(batch_size).map(<[_]>::to_vec).collect();
            if batches.is_empty() {
                batches.push(Vec::new());
            }
            Inputs::Deliver {
                events: wanted.len(),
                batches,
            }
        }
    })
}

/// One call of the plugin's main export on `inputs`.
async fn call(plugin: &mut Standalone, inputs: &Inputs) -> Call {
    let started = Instant::now();
    let (result, text) = match inputs {
        Inputs::Collect => match plugin.collect().await {
            Ok(samples) => {
                let text = samples_table(&samples);
                (
                    Ok(Value::Array(samples.iter().map(sample_json).collect())),
                    text,
                )
            }
            Err(e) => failed(e),
        },
        Inputs::Evaluate {
            samples,
            services,
            events,
        } => match plugin
            .evaluate_input(samples.clone(), services.clone(), events)
            .await
        {
            Ok(alerts) => {
                let text = alerts_table(&alerts, samples.len(), services.len(), events.len());
                (
                    Ok(Value::Array(alerts.iter().map(alert_json).collect())),
                    text,
                )
            }
            Err(e) => failed(e),
        },
        Inputs::Deliver { batches, events } => {
            let mut outcome = Ok(());
            let mut delivered = 0;
            for batch in batches {
                outcome = plugin.deliver(batch).await;
                if outcome.is_err() {
                    break;
                }
                delivered += batch.len();
            }
            match outcome {
                Ok(()) => {
                    let text = format!(
                        "ok: delivered {events} event{} in {} batch{}\n",
                        if *events == 1 { "" } else { "s" },
                        batches.len(),
                        if batches.len() == 1 { "" } else { "es" }
                    );
                    (Ok(json!({ "delivered": delivered })), text)
                }
                Err(e) => {
                    let (result, mut text) = failed(e);
                    if batches.len() > 1 {
                        text.push_str(&format!(
                            "  ({delivered} of {events} events were delivered in the batches before)\n"
                        ));
                    }
                    (result, text)
                }
            }
        }
    };
    Call {
        duration: started.elapsed(),
        memory_bytes: plugin.memory_bytes(),
        result,
        text,
    }
}

/// A failed call's result and the line that says what a host would do.
fn failed(error: CallError) -> (Result<Value, CallError>, String) {
    let then = match &error {
        CallError::Plugin(_) => "a host logs it and calls again at the next interval",
        CallError::Delivery {
            retryable: true, ..
        } => "a host retries the batch with backoff",
        CallError::Delivery {
            retryable: false, ..
        } => "a host dead-letters the batch",
        CallError::Fault(_) => {
            "a host discards the instance and restarts it with backoff (`failed` after max_restarts)"
        }
    };
    let text = format!("FAILED: {error}\n  ({then})\n");
    (Err(error), text)
}

/// A sample as `GET /api/samples` shows it (labels as an object), so a
/// collector's `run --json` can feed a rule's `run --samples`.
fn sample_json(sample: &Sample) -> Value {
    let labels: serde_json::Map<String, Value> = sample
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    json!({
        "name": sample.name,
        "kind": sample.kind,
        "labels": labels,
        "value": sample.value,
        "help": sample.help,
        "timestamp_ms": sample.timestamp_ms,
    })
}

/// An alert as `evaluate` returned it (labels as an object).
fn alert_json(alert: &RuleAlert) -> Value {
    let labels: serde_json::Map<String, Value> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    json!({
        "name": alert.name,
        "severity": alert.severity,
        "value": alert.value,
        "labels": labels,
        "summary": alert.summary,
    })
}

fn samples_table(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "collect() returned no samples\n".to_string();
    }
    let rows: Vec<Vec<String>> = samples
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                labels(&s.labels),
                s.value.to_string(),
                s.kind.as_str().to_string(),
                s.help.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::table(&["NAME", "LABELS", "VALUE", "KIND", "HELP"], &rows)
}

fn alerts_table(alerts: &[RuleAlert], samples: usize, services: usize, events: usize) -> String {
    let input = format!("on {samples} samples, {services} services, {events} events");
    if alerts.is_empty() {
        return format!("evaluate() returned no alerts ({input})\n");
    }
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.severity.as_str().to_string(),
                a.value.map_or_else(String::new, |v| v.to_string()),
                labels(&a.labels),
                a.summary.clone(),
            ]
        })
        .collect();
    format!(
        "{}({} alert{} {input}, as evaluate() returned them: a host holds each for the manifest's `for` before it fires)\n",
        table::table(&["NAME", "SEVERITY", "VALUE", "LABELS", "SUMMARY"], &rows),
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" }
    )
}

/// The JSON object: `loaded` (what loading found) with the input, every
/// call and the last call's output.
fn print_json(mut value: Value, kind: PluginKind, inputs: &Inputs, calls: &[Call]) -> Result<()> {
    let input = match inputs {
        Inputs::Collect => Value::Null,
        Inputs::Evaluate {
            samples,
            services,
            events,
        } => json!({
            "samples": samples.iter().map(sample_json).collect::<Vec<_>>(),
            "services": services.len(),
            "events": events.len(),
        }),
        Inputs::Deliver { batches, events } => json!({
            "events": events,
            "batches": batches.len(),
        }),
    };
    let calls_json: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut call = json!({
                "call": i + 1,
                "ok": c.result.is_ok(),
                "duration_ms": c.duration.as_secs_f64() * 1000.0,
                "memory_bytes": c.memory_bytes,
            });
            match &c.result {
                Ok(output) => call["output"] = output.clone(),
                Err(error) => call["error"] = error_json(error),
            }
            call
        })
        .collect();
    let last = calls.last().and_then(|c| c.result.as_ref().ok()).cloned();
    value["ok"] = Value::Bool(calls.iter().all(|c| c.result.is_ok()));
    value["input"] = input;
    value["calls"] = Value::Array(calls_json);
    value["output"] = last.clone().unwrap_or(Value::Null);
    // The last call's result under its own name: `samples` (the shape
    // `--samples` reads) or `alerts`.
    match kind {
        PluginKind::Collector => value["samples"] = last.unwrap_or(Value::Array(Vec::new())),
        PluginKind::Rule => value["alerts"] = last.unwrap_or(Value::Array(Vec::new())),
        PluginKind::Sink => {}
    }
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn error_json(error: &CallError) -> Value {
    match error {
        CallError::Plugin(message) => json!({ "kind": "plugin", "message": message }),
        CallError::Delivery { retryable, message } => {
            json!({ "kind": "delivery", "retryable": retryable, "message": message })
        }
        CallError::Fault(fault) => json!({ "kind": "fault", "message": fault.to_string() }),
    }
}
