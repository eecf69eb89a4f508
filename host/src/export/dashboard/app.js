// The dashboard: loads every panel from the REST API, then stays live over
// the WebSocket `/ws` when it can (polling every few seconds otherwise, and
// as a safety net), and runs the admin actions with the entered token.

import { call, query, token, setToken } from "./api.js";
import { Chart, percent, bytes, number } from "./charts.js";
import * as panels from "./panels.js";

const $ = (selector) => document.querySelector(selector);

const POLL_MS = 4000; // without the WebSocket
const SAFETY_MS = 30000; // with it
const HISTORY_MS = 60000; // re-read the charts' history
const METRIC = { cpu: "wasmon_cpu_usage_ratio", memory: "wasmon_memory_usage_ratio", gpu: "wasmon_gpu_utilization_ratio" };
const EXTRA = ["wasmon_memory_used_bytes", "wasmon_memory_total_bytes"];

const state = {
  config: { admin_token_required: false, history_window_seconds: 3600 },
  ready: null,
  live: false,
  alerts: null,
  plugins: [],
  services: null,
  samplers: [],
  store: null,
  supervisor: false,
  gpu: false,
  pluginMetric: "",
  pluginsKey: null,
  alertState: "",
  socket: null,
  socketLive: false,
  socketFailures: 0,
  lastFull: 0,
  memory: {},
  rule: "",
  ruleShadow: null,
};

const charts = {
  cpu: new Chart($('[data-chart="cpu"]'), { format: percent, min: 0, max: 1 }),
  memory: new Chart($('[data-chart="memory"]'), { format: percent, min: 0, max: 1 }),
  gpu: new Chart($('[data-chart="gpu"]'), { format: percent, min: 0, max: 1 }),
  plugin: new Chart($('[data-chart="plugin"]'), { format: number }),
};

// ---- small helpers -------------------------------------------------------

let toastTimer = 0;
function toast(text, kind = "ok") {
  const el = $("#toast");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), kind === "error" ? 10000 : 4000);
}

const debounced = new Map();
function soon(fn, ms = 250) {
  clearTimeout(debounced.get(fn));
  debounced.set(fn, setTimeout(fn, ms));
}

function seriesLabel(name, labels) {
  const rest = Object.entries(labels || {}).filter(([k]) => k !== "plugin");
  return rest.length ? rest.map(([k, v]) => `${k}=${v}`).join(" ") : name;
}

function windowParam() {
  return `${Math.min(3600, state.config.history_window_seconds || 3600)}s`;
}

// ---- panels --------------------------------------------------------------

function renderHeader() {
  const pill = $("#overall");
  let text = "Healthy";
  let tone = "ok";
  if (state.ready === null) [text, tone] = ["Connecting…", "unknown"];
  else if (!state.live) [text, tone] = ["Unreachable", "bad"];
  else if (!state.ready) [text, tone] = ["Not ready", "bad"];
  else if (state.alerts?.overall === "ALERT") [text, tone] = ["Alerting", "bad"];
  else if (state.alerts?.overall === "WARNING") [text, tone] = ["Warning", "warn"];
  pill.textContent = text;
  pill.dataset.state = tone;
  const link = $("#link");
  link.textContent = state.socketLive ? "Live" : "Polling";
  link.dataset.state = state.socketLive ? "live" : "polling";
  link.title = state.socketLive ? "Updates pushed over /ws" : `Refreshed every ${POLL_MS / 1000}s`;
  const admin = Boolean(token());
  $("#token").hidden = admin;
  $("#token-save").hidden = admin;
  $("#token-clear").hidden = !admin;
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
}

function renderHealth() {
  panels.renderHealth($("#health"), state);
  renderHeader();
}

async function refreshHealth() {
  const [ready, live, store, samplers] = await Promise.allSettled([call("/readyz"), call("/healthz"), call("/api/store"), call("/api/samplers")]);
  state.ready = ready.status === "fulfilled" ? Boolean(ready.value?.ready) : false;
  state.live = live.status === "fulfilled";
  if (store.status === "fulfilled") state.store = store.value;
  if (samplers.status === "fulfilled") state.samplers = samplers.value.samplers || [];
  const gpu = state.samplers.some((s) => s.name === "gpu" && s.available);
  if (gpu !== state.gpu) {
    state.gpu = gpu;
    $("#gpu-card").hidden = !gpu;
    if (gpu) loadHistory("gpu");
  }
  renderHealth();
}

function renderPlugins() {
  panels.renderPlugins($("#plugins tbody"), state.plugins, { admin: Boolean(token()), supervisor: state.supervisor, act });
  const bad = state.plugins.filter((p) => !["running", "loading"].includes(p.status)).length;
  $("#plugins-summary").textContent = `${state.plugins.length} loaded${bad ? ` · ${bad} need attention` : ""}`;
}

async function refreshPlugins() {
  try {
    state.plugins = (await call("/api/plugins")).plugins || [];
  } catch (error) {
    console.warn("plugins:", error.message);
    return;
  }
  renderPlugins();
  renderHealth();
  // The metric list (every live series read once) only when a plugin came,
  // went or changed generation, not on every poll.
  const key = state.plugins.map((p) => `${p.name}:${p.generation}:${p.status}`).join(",");
  if (key !== state.pluginsKey) {
    state.pluginsKey = key;
    soon(refreshPluginMetrics, 500);
  }
}

async function refreshAlerts() {
  try {
    state.alerts = await call(`/api/alerts${query({ limit: 50, state: state.alertState })}`);
  } catch (error) {
    console.warn("alerts:", error.message);
    return;
  }
  panels.renderAlerts($("#alerts"), state.alerts);
  renderHealth();
}

async function refreshServices() {
  try {
    state.services = await call("/api/services");
  } catch (error) {
    console.warn("services:", error.message);
    return;
  }
  panels.renderServices($("#services"), state.services);
  const s = state.services;
  $("#services-summary").textContent = s.total ? `${s.up} up · ${s.down} down` : "";
  renderHealth();
}

async function refreshEvents() {
  const form = new FormData($("#event-filter"));
  const params = { limit: 50 };
  for (const [k, v] of form.entries()) params[k] = String(v).trim();
  try {
    panels.renderEvents($("#events tbody"), await call(`/api/events${query(params)}`));
  } catch (error) {
    toast(`Events: ${error.message}`, "error");
  }
}

// ---- charts --------------------------------------------------------------

async function loadHistory(kind) {
  const name = kind === "plugin" ? state.pluginMetric : METRIC[kind];
  if (!name) {
    charts[kind].set([]);
    return;
  }
  try {
    const answer = await call(`/api/history${query({ name, window: windowParam() })}`);
    charts[kind].set(answer.series.map((s) => ({ label: seriesLabel(kind === "plugin" ? name : kind.toUpperCase(), s.labels), points: s.points })));
  } catch (error) {
    console.warn(`history ${name}:`, error.message);
  }
}

function chartFor(name) {
  for (const [kind, metric] of Object.entries(METRIC)) if (metric === name) return kind;
  return name === state.pluginMetric ? "plugin" : null;
}

/** One live sample, from `/ws` or from polling `/api/samples`. */
function sample(name, labels, value, ms) {
  if (EXTRA.includes(name)) {
    state.memory[name] = value;
    const used = state.memory.wasmon_memory_used_bytes;
    const total = state.memory.wasmon_memory_total_bytes;
    if (used !== undefined && total) $("#mem-now").title = `${bytes(used)} of ${bytes(total)}`;
    return;
  }
  const kind = chartFor(name);
  if (!kind || value === null || !Number.isFinite(value)) return;
  charts[kind].push(seriesLabel(kind === "plugin" ? name : kind.toUpperCase(), labels), ms, value);
  if (kind !== "plugin") $(`#${kind === "memory" ? "mem" : kind}-now`).textContent = percent(value);
}

function selection() {
  return [...Object.values(METRIC), ...EXTRA, state.pluginMetric].filter(Boolean).join(",");
}

async function pollSamples() {
  try {
    const answer = await call(`/api/samples${query({ name: selection() })}`);
    for (const s of answer.samples || []) sample(s.name, s.labels, s.value, s.timestamp_ms);
  } catch (error) {
    console.warn("samples:", error.message);
  }
}

/** The plugin metrics to choose from: live series with a `plugin` label. */
async function refreshPluginMetrics() {
  let names = [];
  try {
    const answer = await call("/api/samples?name=*");
    names = [...new Set((answer.samples || []).filter((s) => s.labels && s.labels.plugin).map((s) => s.name))].sort();
  } catch (error) {
    console.warn("plugin metrics:", error.message);
    return;
  }
  const select = $("#plugin-metric");
  const current = [...select.options].map((o) => o.value).join(",");
  $("#plugin-chart-empty").hidden = names.length > 0;
  select.hidden = names.length === 0;
  if (current === names.join(",")) return;
  // Start on a series that moves rather than a constant `_info`-like one.
  const lively = names.find((n) => !/_(info|build|version)$/.test(n));
  const keep = names.includes(state.pluginMetric) ? state.pluginMetric : lively || names[0] || "";
  select.replaceChildren(...names.map((n) => panels.h("option", { value: n }, n)));
  select.value = keep;
  if (keep !== state.pluginMetric) {
    state.pluginMetric = keep;
    await loadHistory("plugin");
    resubscribe();
  }
}

// ---- actions -------------------------------------------------------------

const LABEL = { reload: "Reload", reset: "Reset", stop: "Stop", start: "Start" };

async function act(name, action) {
  const path = action === "stop" || action === "start" ? `/api/system/supervisor/workers/${encodeURIComponent(name)}/${action}` : `/api/plugins/${encodeURIComponent(name)}/${action}`;
  const row = document.querySelector(`#plugins tr[data-plugin="${CSS.escape(name)}"]`);
  for (const b of row ? row.querySelectorAll("button") : []) b.disabled = true;
  try {
    await call(path, { method: "POST", admin: true });
    toast(`${LABEL[action]} ${name}: done`, "ok");
  } catch (error) {
    if ((action === "stop" || action === "start") && (error.status === 404 || error.status === 405)) state.supervisor = false;
    toast(`${LABEL[action]} ${name} refused: ${error.message}${error.status === 401 || error.status === 403 ? " (check the admin token)" : ""}`, "error");
  }
  await refreshPlugins();
}

// ---- a rule's page: its shadow's diff and a backtest timeline -------------

function ruleFromHash() {
  const m = /^#rule\/(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : "";
}

async function refreshRule() {
  const name = state.rule;
  $("#rule-card").hidden = !name;
  if (!name) return;
  $("#rule-title").textContent = `Rule ${name}`;
  $("#rule-backtest").hidden = !token();
  try {
    state.ruleShadow = await call(`/api/plugins/${encodeURIComponent(name)}/shadow`);
  } catch (error) {
    state.ruleShadow = null;
    if (error.status !== 404) console.warn("shadow:", error.message);
  }
  panels.renderShadow($("#rule-shadow"), $("#rule-diff tbody"), state.ruleShadow);
}

async function openRule() {
  state.rule = ruleFromHash();
  $("#rule-timeline tbody").replaceChildren();
  $("#rule-backtest-info").textContent = "No backtest run yet.";
  await refreshRule();
  if (state.rule) $("#rule-card").scrollIntoView({ block: "nearest" });
}

async function backtest() {
  const name = state.rule;
  const version = state.ruleShadow ? "shadow" : "serving";
  const button = $("#rule-backtest");
  button.disabled = true;
  $("#rule-backtest-info").textContent = `Backtesting ${version}…`;
  try {
    const report = await call(`/api/plugins/${encodeURIComponent(name)}/backtest${query({ window: `${Math.round(state.config.history_window_seconds)}s`, step: "10s", version })}`, { method: "POST", admin: true });
    panels.renderTimeline($("#rule-backtest-info"), $("#rule-timeline tbody"), report);
  } catch (error) {
    $("#rule-backtest-info").textContent = "";
    toast(`Backtest of ${name} refused: ${error.message}${error.status === 401 || error.status === 403 ? " (check the admin token)" : ""}`, "error");
  } finally {
    button.disabled = false;
  }
}

// ---- live: WebSocket, else polling ---------------------------------------

function wsAllowed() {
  return !state.config.admin_token_required || Boolean(token());
}

function connect() {
  if (state.socket || !wsAllowed() || !("WebSocket" in window)) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const t = token();
  const socket = new WebSocket(`${scheme}://${location.host}/ws${t ? `?token=${encodeURIComponent(t)}` : ""}`);
  state.socket = socket;
  socket.addEventListener("open", () => {
    state.socketLive = true;
    state.socketFailures = 0;
    resubscribe();
    renderHeader();
  });
  socket.addEventListener("message", (message) => {
    let m;
    try {
      m = JSON.parse(message.data);
    } catch {
      return;
    }
    onMessage(m);
  });
  socket.addEventListener("close", () => {
    const wasLive = state.socketLive;
    state.socket = null;
    state.socketLive = false;
    renderHeader();
    state.socketFailures = wasLive ? 0 : state.socketFailures + 1;
    // A socket that never opened (refused token, limit reached) is retried
    // rarely; polling keeps the page live meanwhile.
    if (state.socketFailures < 5) setTimeout(connect, Math.min(60000, 2000 * 2 ** state.socketFailures));
  });
}

function resubscribe() {
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ action: "subscribe", channels: ["metrics", "events", "alerts", "services", "plugins", "system"], metrics: { name: selection(), labels: {} } }));
}

function onMessage(m) {
  const type = String(m.type || "");
  if (type === "metrics.snapshot" || type === "metrics.update") {
    for (const s of m.data?.series || []) sample(s.name, s.labels, s.value, s.timestamp_ms);
  } else if (type.startsWith("plugin.")) {
    soon(refreshPlugins);
  } else if (type.startsWith("alert.")) {
    soon(refreshAlerts);
  } else if (type.startsWith("service.")) {
    soon(refreshServices);
  } else if (type === "event.recorded") {
    soon(refreshEvents, 500);
  } else if (type === "system.health_changed") {
    soon(refreshHealth);
  } else if (type === "system.lagged") {
    state.socket?.close();
  } else if (type === "system.error") {
    console.warn("ws:", m.data);
  }
}

async function refreshAll() {
  state.lastFull = Date.now();
  await Promise.all([refreshHealth(), refreshPlugins(), refreshAlerts(), refreshServices(), refreshEvents(), refreshRule()]);
}

function tick() {
  if (!state.socketLive) {
    refreshAll();
    pollSamples();
  } else if (Date.now() - state.lastFull >= SAFETY_MS) {
    refreshAll();
  }
}

// ---- start ---------------------------------------------------------------

async function start() {
  try {
    state.config = { ...state.config, ...(await call("/ui/config.json")) };
  } catch (error) {
    console.warn("config:", error.message);
  }
  try {
    const doc = await call("/openapi.json");
    state.supervisor = Boolean(doc?.paths?.["/api/system/supervisor/workers/{name}/stop"]);
  } catch {
    state.supervisor = false;
  }

  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token").value.trim();
    $("#token").value = "";
    if (!value) return;
    setToken(value);
    toast("Admin actions unlocked for this tab", "ok");
    renderPlugins();
    refreshRule();
    renderHeader();
    state.socket?.close();
    state.socketFailures = 0;
    connect();
  });
  $("#token-clear").addEventListener("click", () => {
    setToken("");
    renderPlugins();
    refreshRule();
    renderHeader();
    if (state.config.admin_token_required) state.socket?.close();
  });
  $("#alert-filter").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    for (const b of $("#alert-filter").querySelectorAll("button")) b.classList.toggle("on", b === button);
    state.alertState = button.dataset.state;
    refreshAlerts();
  });
  window.addEventListener("hashchange", openRule);
  $("#rule-backtest").addEventListener("click", backtest);
  $("#rule-close").addEventListener("click", () => {
    history.replaceState(null, "", location.pathname);
    openRule();
  });
  state.rule = ruleFromHash();
  $("#event-filter").addEventListener("input", () => soon(refreshEvents, 350));
  $("#event-filter").addEventListener("submit", (event) => event.preventDefault());
  $("#plugin-metric").addEventListener("change", async (event) => {
    state.pluginMetric = event.target.value;
    await loadHistory("plugin");
    resubscribe();
  });

  await refreshAll();
  await Promise.all([loadHistory("cpu"), loadHistory("memory"), refreshPluginMetrics()]);
  await pollSamples();
  connect();
  setInterval(tick, POLL_MS);
  setInterval(() => {
    for (const kind of ["cpu", "memory", "plugin"]) loadHistory(kind);
    if (state.gpu) loadHistory("gpu");
  }, HISTORY_MS);
  document.body.dataset.ready = "true";
}

start();
