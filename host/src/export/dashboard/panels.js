// The cards and tables. Everything from the host goes in as text
// (textContent), never as HTML.

import { number, bytes } from "./charts.js";

/** `h("td", {class: "num"}, "3")`: an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function ago(when) {
  if (when === null || when === undefined) return "never";
  const ms = typeof when === "number" ? when : Date.parse(when);
  if (!Number.isFinite(ms)) return "—";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function clock(when) {
  const d = new Date(when);
  return Number.isFinite(d.getTime()) ? d.toLocaleTimeString([], { hour12: false }) : "—";
}

const TONE = {
  running: "ok", up: "ok", OK: "ok", resolved: "ok", ready: "ok", healthy: "ok",
  loading: "info", restarting: "warn", pending: "warn", WARNING: "warn", stopped: "idle", unknown: "idle",
  crashed: "bad", failed: "bad", invalid: "bad", down: "bad", firing: "bad", ALERT: "bad",
  info: "info", warning: "warn", error: "bad", critical: "bad", debug: "idle",
};

export function badge(text, tone) {
  return h("span", { class: `badge ${tone || TONE[text] || "idle"}` }, text);
}

function labelText(labels) {
  const entries = Array.isArray(labels) ? labels : Object.entries(labels || {});
  return entries.map(([k, v]) => `${k}=${v}`).join(", ");
}

/** An alert's name, then its labels in braces (muted) when it has any. */
function nameWithLabels(name, labels) {
  return [name, labels && Object.keys(labels).length ? h("span", { class: "muted" }, ` {${labelText(labels)}}`) : null];
}

function stat(label, value, tone, sub) {
  return h("div", { class: `stat ${tone || ""}` }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), sub ? h("div", { class: "stat-sub" }, sub) : null);
}

/** The health row: readiness, liveness, alerts, plugins, services, samplers, store. */
export function renderHealth(el, s) {
  const cards = [];
  cards.push(stat("Readiness", s.ready === null ? "…" : s.ready ? "Ready" : "Not ready", s.ready ? "ok" : "bad", s.live ? "liveness ok" : "liveness failing"));
  const overall = s.alerts?.overall ?? "…";
  const firing = (s.alerts?.alerts || []).filter((a) => a.state === "firing").length;
  cards.push(stat("Alerts", overall, TONE[overall], `${firing} firing`));
  const plugins = s.plugins || [];
  const running = plugins.filter((p) => p.status === "running").length;
  cards.push(stat("Plugins", `${running}/${plugins.length}`, running === plugins.length ? "ok" : "warn", "running"));
  const svc = s.services;
  if (svc) cards.push(stat("Services", `${svc.up}/${svc.total}`, svc.down ? "bad" : "ok", svc.down ? `${svc.down} down` : "all up"));
  for (const sm of s.samplers || []) {
    const value = !sm.enabled ? "Off" : sm.up ? "Up" : sm.available ? "Down" : "Unavailable";
    const tone = !sm.enabled || (!sm.available && sm.name === "gpu") ? "idle" : sm.up ? "ok" : "bad";
    cards.push(stat(`${sm.name === "gpu" ? "GPU" : sm.name[0].toUpperCase() + sm.name.slice(1)} sampler`, value, tone, sm.up ? `last ${ago(sm.last_sample_ms)}` : sm.reason || ""));
  }
  if (s.store) {
    const used = s.store.plugin_series / Math.max(1, s.store.max_series);
    cards.push(stat("Store", number(s.store.live_series), used > 0.9 ? "warn" : "ok", `series · ${bytes(s.store.approx_bytes)}`));
  }
  el.replaceChildren(...cards);
}

/**
 * The plugin table. `ui.admin`: a token is entered; `ui.supervisor`: the
 * stop/start routes exist; `ui.act(name, action)`: a button was pressed.
 */
export function renderPlugins(tbody, plugins, ui) {
  const rows = plugins.map((p) => {
    const error = p.last_error || p.last_reload_error || "";
    const actions = [];
    if (ui.admin) {
      actions.push(h("button", { type: "button", class: "small", dataset: { action: "reload" }, onclick: () => ui.act(p.name, "reload") }, "Reload"));
      if (["failed", "crashed", "invalid", "restarting"].includes(p.status)) {
        actions.push(h("button", { type: "button", class: "small", dataset: { action: "reset" }, onclick: () => ui.act(p.name, "reset") }, "Reset"));
      }
      if (ui.supervisor) {
        const stopped = p.status === "stopped";
        actions.push(h("button", { type: "button", class: "small ghost", dataset: { action: stopped ? "start" : "stop" }, onclick: () => ui.act(p.name, stopped ? "start" : "stop") }, stopped ? "Start" : "Stop"));
      }
    }
    return h(
      "tr",
      { dataset: { plugin: p.name, status: p.status, generation: String(p.generation) } },
      h("td", { class: "name" }, p.kind === "rule" ? h("a", { href: `#rule/${encodeURIComponent(p.name)}`, dataset: { rule: p.name } }, p.name) : p.name, p.critical ? h("span", { class: "tag" }, "critical") : null),
      h("td", {}, p.kind || "—"),
      h("td", {}, badge(p.status)),
      h("td", { class: "num gen" }, p.generation),
      h("td", { title: p.loaded_at || "" }, ago(p.loaded_at)),
      h("td", { class: "num" }, number(p.calls ?? 0)),
      h("td", { class: `num ${p.errors || p.faults ? "bad-text" : ""}` }, number((p.errors ?? 0) + (p.faults ?? 0))),
      h("td", { class: "error-cell", title: error }, error || h("span", { class: "muted" }, "—")),
      h("td", { class: "actions" }, actions.length ? actions : h("span", { class: "muted small-text" }, ui.admin ? "" : "locked")),
    );
  });
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No plugins loaded.")));
  tbody.replaceChildren(...rows);
}

export function renderAlerts(ul, answer) {
  const items = (answer?.alerts || []).map((a) =>
    h(
      "li",
      { class: "item", dataset: { state: a.state } },
      h("span", { class: `dot ${a.state === "resolved" ? "ok" : TONE[a.severity] || "warn"}` }),
      h("div", { class: "item-main" }, h("div", { class: "item-title" }, ...nameWithLabels(a.name, a.labels)), h("div", { class: "item-sub" }, a.summary || "", h("span", { class: "muted" }, ` · ${a.rule} · ${ago(a.since)}`))),
      badge(a.state),
    ),
  );
  if (!items.length) items.push(h("li", { class: "empty" }, "No alerts. All quiet."));
  ul.replaceChildren(...items);
}

export function renderServices(ul, answer) {
  const items = (answer?.services || []).map((s) =>
    h(
      "li",
      { class: "item", dataset: { service: s.service } },
      h("span", { class: `dot ${TONE[s.status] || "idle"}` }),
      h("div", { class: "item-main" }, h("div", { class: "item-title" }, s.service), h("div", { class: "item-sub muted" }, `last seen ${ago(s.last_seen_ms ?? s.last_seen)}${s.phase ? ` · ${s.phase}` : ""}`)),
      badge(s.status),
    ),
  );
  if (!items.length) items.push(h("li", { class: "empty" }, "No services have reported yet."));
  ul.replaceChildren(...items);
}

export function renderEvents(tbody, answer) {
  const rows = (answer?.events || []).map((e) =>
    h(
      "tr",
      {},
      h("td", { class: "nowrap", title: e.time || "" }, clock(e.time_ms ?? e.time)),
      h("td", {}, badge(e.severity || "info")),
      h("td", { class: "mono" }, e.event_type),
      h("td", {}, e.service || e.source || "—"),
      h("td", { class: "detail" }, e.detail || labelText(e.attributes)),
    ),
  );
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No events match.")));
  tbody.replaceChildren(...rows);
}

function seen(side) {
  return side ? `${clock(side.first_seen_ms)} / ${clock(side.last_seen_ms)}${side.firing ? " (firing)" : ""} · ${side.severity}` : "—";
}

/** A rule's shadow: one line of status, and its diff (`null`: no shadow). */
export function renderShadow(line, tbody, view) {
  if (!view) {
    line.textContent = "no shadow";
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "empty" }, "This rule has no shadow: install NAME.shadow.wasm or NAME.shadow.toml.")));
    return;
  }
  const c = view.counts || {};
  line.textContent = `shadow #${view.generation} ${view.status} since ${clock(view.since)} · ${view.evaluations} evaluations · ${view.faults} faults · ${c.only_shadow || 0} only shadow, ${c.only_serving || 0} only serving, ${c.different || 0} different, ${c.same || 0} alike`;
  const rows = (view.diff || []).map((d) =>
    h(
      "tr",
      { dataset: { kind: d.kind } },
      h("td", {}, badge(d.kind.replace("_", " "), d.kind === "different" ? "warn" : "info")),
      h("td", {}, ...nameWithLabels(d.name, d.labels)),
      h("td", {}, seen(d.shadow)),
      h("td", {}, seen(d.serving)),
    ),
  );
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No difference so far.")));
  tbody.replaceChildren(...rows);
}

/** A backtest's timeline beside the serving version's real alert changes. */
export function renderTimeline(info, tbody, report) {
  info.textContent = `${report.version} #${report.generation}: ${report.evaluated}/${report.steps} steps over ${number(report.series)} series in ${number(report.took_ms)} ms${report.complete ? "" : ` (stopped: ${report.stopped})`}; not replayed: ${(report.unreconstructed || []).map((u) => u.field).join(", ")}`;
  const entries = [
    ...(report.timeline || []).map((e) => ({ ...e, version: `backtest (${report.version})` })),
    ...(report.serving_history || []).map((e) => ({ ...e, version: "serving (real)" })),
  ].sort((a, b) => a.time_ms - b.time_ms);
  const rows = entries.map((e) =>
    h(
      "tr",
      { dataset: { state: e.state } },
      h("td", { class: "nowrap" }, clock(e.time_ms)),
      h("td", {}, e.version),
      h("td", {}, badge(e.state)),
      h("td", {}, ...nameWithLabels(e.name, e.labels)),
      h("td", {}, badge(e.severity)),
      h("td", { class: "num" }, e.value ?? "—"),
    ),
  );
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No alert raised in the window.")));
  tbody.replaceChildren(...rows);
}
