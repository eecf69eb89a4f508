// Unit tests of a wasmon JS plugin under plain Node (`node --test`): an
// in-memory host behind the plugin's `wasmon:plugin/*@0.2.0` imports.
//
//   import { setup, loadPlugin, ruleInput } from './sdk/testing.mjs';
//   const plugin = await loadPlugin(new URL('./plugin.js', import.meta.url));
//   const host = setup({ config: { url: 'http://127.0.0.1:8080/status' },
//                        http: { 'GET http://127.0.0.1:8080/status': { body: { ok: true } } } });
//   plugin.init();
//   const samples = plugin.collect();
//   host.logs, host.requests, host.state ...
//
// Importing this module registers the loader hooks (testing-hooks.mjs), so
// the plugin must be imported AFTER it: with `await loadPlugin(url)` (or
// `await import(...)`), not with a static `import`. The exports you call are
// the component's own (`init`, `collect`, `evaluate`, `deliver`), taking and
// returning what the host passes (WIT shapes: label lists, BigInt times); the
// builders `ruleInput`, `event`, `message` make those inputs.
//
// Like the real host, a capability that `setup` was not given answers
// `not-granted`, and a canned HTTP response must be listed to be found.

import { register } from 'node:module';

register('./testing-hooks.mjs', import.meta.url);

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const KEY = Symbol.for('wasmon.testing');

/** What the real component throws when an import returns `err(payload)`. */
export class ComponentError extends Error {
  constructor(payload) {
    super(`${typeof payload === 'object' ? JSON.stringify(payload, (_, v) => (typeof v === 'bigint' ? Number(v) : v)) : payload} (see error.payload)`);
    this.name = 'ComponentError';
    this.payload = payload;
  }
}

/**
 * A capability failure for canned answers: `failure('timeout')`,
 * `failure('transport', 'connection refused')`. Return or throw it from a
 * handler; the plugin sees what the host would send.
 */
export function failure(tag, val = undefined) {
  return new ComponentError(val === undefined ? { tag } : { tag, val });
}

/** A Redis status reply (`+OK`) for canned Redis answers. */
export function redisStatus(text) {
  return { [KEY]: 'status', text };
}

const bytes = (v) => {
  if (v === undefined || v === null) return new Uint8Array();
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return encoder.encode(v);
  return encoder.encode(JSON.stringify(v));
};

const labels = (obj) => (Array.isArray(obj) ? obj : Object.entries(obj ?? {}).map(([name, value]) => ({ name, value: String(value) })));
const big = (v) => (v === undefined || v === null ? undefined : BigInt(Math.trunc(Number(v))));

function notGranted(capability) {
  return failure('not-granted', `the test's setup() grants no ${capability} (pass setup({ ${capability}: ... }))`);
}

// A canned HTTP answer: a number (status), a string or object (the body, 200),
// or { status, headers, body }.
function httpResponse(answer) {
  if (answer instanceof ComponentError) throw answer;
  if (typeof answer === 'number') answer = { status: answer };
  else if (typeof answer === 'string' || answer instanceof Uint8Array || !('body' in answer || 'status' in answer || 'headers' in answer)) answer = { body: answer };
  return { status: answer.status ?? 200, headers: labels(answer.headers), body: bytes(answer.body), elapsedUs: big(answer.elapsedUs ?? 1000) };
}

function redisNodes(value) {
  const nodes = [];
  const add = (v) => {
    const i = nodes.length;
    nodes.push(null);
    if (v === null || v === undefined) nodes[i] = { tag: 'nil' };
    else if (typeof v === 'bigint') nodes[i] = { tag: 'int', val: v };
    else if (typeof v === 'number') nodes[i] = Number.isInteger(v) ? { tag: 'int', val: BigInt(v) } : { tag: 'double', val: v };
    else if (typeof v === 'boolean') nodes[i] = { tag: 'boolean', val: v };
    else if (typeof v === 'string' || v instanceof Uint8Array) nodes[i] = { tag: 'data', val: bytes(v) };
    else if (v[KEY] === 'status') nodes[i] = { tag: 'status', val: v.text };
    else if (Array.isArray(v)) nodes[i] = { tag: 'array', val: v.map(add) };
    else nodes[i] = { tag: 'pairs', val: Object.entries(v).map(([k, x]) => [add(k), add(x)]) };
    return i;
  };
  add(value);
  return { nodes };
}

function sqlValue(v) {
  if (v === null || v === undefined) return { tag: 'null' };
  if (typeof v === 'boolean') return { tag: 'boolean', val: v };
  if (typeof v === 'bigint') return { tag: 'int', val: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { tag: 'int', val: BigInt(v) } : { tag: 'float', val: v };
  if (typeof v === 'string') return { tag: 'text', val: v };
  if (v instanceof Date) return { tag: 'timestamp', val: BigInt(v.getTime()) * 1000n };
  if (v instanceof Uint8Array) return { tag: 'bytes', val: v };
  return v;
}

function sqlParam(v) {
  switch (v.tag) {
    case 'null':
      return null;
    case 'int':
      return Number(v.val);
    case 'timestamp':
      return new Date(Number(v.val / 1000n));
    default:
      return v.val;
  }
}

function answer(handler, key, ...args) {
  let out = typeof handler === 'function' ? handler(...args) : handler?.[key];
  if (typeof out === 'function') out = out(...args);
  if (out instanceof ComponentError) throw out;
  return out;
}

/**
 * Resets the in-memory host for the next test and returns what it records:
 * `logs` ({ level, message }), `requests` (HTTP: { method, url, headers, body, text, timeoutMs }),
 * `commands` (Redis: { name, args }), `queries` (SQL: { name, params }),
 * `published` (RabbitMQ: { exchange, routingKey, headers, body, text }), `state` (a Map of bytes).
 *
 * Options: `name`, `config` (the manifest's [config]), `state` ({ key: string|bytes|JSON }),
 * `stateQuota` (bytes, default 1 MiB like the host), and the capabilities:
 * `http`: { 'GET http://x/y' or 'http://x/y': answer } or (request) => answer;
 * `redis`: (name, args as strings) => value (arrays, objects, numbers, strings, null, redisStatus('OK'));
 * `sql`: { queryName: { columns, rows } } or (name, params) => { columns, rows };
 * `rabbitmq`: true (accept every publish) or (exchange, routingKey, body) => void|failure(...);
 * `storage`: { health, buckets, bucketStats, head } functions returning plain values.
 * A handler may return or throw `failure(tag, detail)`.
 */
export function setup(options = {}) {
  const { name = 'test_plugin', config = {}, stateQuota = 1024 * 1024 } = options;
  const rec = { logs: [], requests: [], commands: [], queries: [], published: [], state: new Map() };
  for (const [k, v] of Object.entries(options.state ?? {})) rec.state.set(k, bytes(v));
  const used = () => [...rec.state].reduce((n, [k, v]) => n + k.length + v.length, 0);

  globalThis[KEY] = {
    host: {
      log: (level, message) => {
        rec.logs.push({ level, message });
        if (process.env.WASMON_TEST_LOG) console.error(`[${level}] ${message}`);
      },
      pluginName: () => name,
      configJson: () => JSON.stringify(config),
      configGet: (key) => (key in config ? (typeof config[key] === 'string' ? config[key] : JSON.stringify(config[key])) : undefined),
      stateGet: (key) => (rec.state.has(key) ? new Uint8Array(rec.state.get(key)) : undefined),
      stateSet: (key, value) => {
        const before = rec.state.get(key);
        rec.state.set(key, new Uint8Array(value));
        if (used() > stateQuota) {
          if (before === undefined) rec.state.delete(key);
          else rec.state.set(key, before);
          throw new ComponentError({ message: `state quota of ${stateQuota} bytes exceeded (key "${key}")` });
        }
      },
      stateDelete: (key) => void rec.state.delete(key),
      stateKeys: () => [...rec.state.keys()],
    },
    http: {
      send: (req) => {
        const method = req.method.toUpperCase();
        const headers = Object.fromEntries(req.headers.map((h) => [h.name.toLowerCase(), h.value]));
        const request = { method, url: req.url, headers, body: req.body, text: req.body ? decoder.decode(req.body) : undefined, timeoutMs: req.timeoutMs };
        rec.requests.push(request);
        const h = options.http;
        if (h === undefined) throw notGranted('http');
        const out = typeof h === 'function' ? h(request) : (h[`${method} ${req.url}`] ?? h[req.url]);
        if (out === undefined) throw failure('not-granted', `no canned response for ${method} ${req.url} in the test's setup({ http })`);
        return httpResponse(out);
      },
    },
    redis: {
      command: (cmd, args) => {
        const strs = args.map((a) => decoder.decode(a));
        rec.commands.push({ name: cmd, args: strs });
        if (options.redis === undefined) throw notGranted('redis');
        return redisNodes(answer(options.redis, cmd, cmd, strs));
      },
    },
    sql: {
      query: (query, params) => {
        const ps = params.map(sqlParam);
        rec.queries.push({ name: query, params: ps });
        if (options.sql === undefined) throw notGranted('sql');
        const out = answer(options.sql, query, query, ps);
        if (out === undefined) throw failure('not-granted', `no query named "${query}" in the test's setup({ sql })`);
        return { columns: out.columns ?? [], rows: (out.rows ?? []).map((row) => row.map(sqlValue)) };
      },
    },
    rabbitmq: {
      publish: (exchange, routingKey, headers, body) => {
        if (options.rabbitmq === undefined) throw notGranted('rabbitmq');
        if (typeof options.rabbitmq === 'function') {
          const out = options.rabbitmq(exchange, routingKey, body);
          if (out instanceof ComponentError) throw out;
        }
        rec.published.push({ exchange, routingKey, headers: Object.fromEntries(headers.map((h) => [h.name, h.value])), body, text: decoder.decode(body) });
      },
    },
    storage: {
      health: () => big(answer(options.storage ?? notStorage(), 'health')),
      buckets: () => answer(options.storage ?? notStorage(), 'buckets').map((b) => ({ name: b.name, createdMs: big(b.createdMs) })),
      bucketStats: (bucket, prefix) => {
        const u = answer(options.storage ?? notStorage(), 'bucketStats', bucket, prefix);
        return { bucket: u.bucket ?? bucket, objects: big(u.objects), bytes: big(u.bytes), truncated: Boolean(u.truncated) };
      },
      head: (bucket, key) => {
        const o = answer(options.storage ?? notStorage(), 'head', bucket, key);
        return { size: big(o.size), etag: o.etag, lastModifiedMs: big(o.lastModifiedMs), contentType: o.contentType };
      },
    },
  };
  return rec;
}

function notStorage() {
  throw notGranted('storage');
}

/** Imports the plugin (after the loader is registered): `await loadPlugin(new URL('./plugin.js', import.meta.url))`. */
export async function loadPlugin(url) {
  if (!globalThis[KEY]) setup();
  return import(url instanceof URL ? url.href : url);
}

/** A sample as the host passes it to a rule: `{ name, value, labels: { ... }, counter?, timestampMs? }`. */
function witSample(s) {
  return {
    name: s.name,
    kind: s.kind ?? (s.counter ? 'counter' : 'gauge'),
    labels: labels(s.labels),
    value: Number(s.value),
    help: s.help,
    timestampMs: big(s.timestampMs),
  };
}

/** A rule's input as the host passes it: `ruleInput({ samples: [{ name, value, labels }], services, events })`. */
export function ruleInput({ nowMs = Date.now(), samples = [], services = [], events = [] } = {}) {
  return {
    nowMs: big(nowMs),
    samples: samples.map(witSample),
    services: services.map((s) => ({ name: s.name, up: s.up ?? true, lastSeenMs: big(s.lastSeenMs ?? nowMs), phase: s.phase })),
    events: events.map((e) => (typeof e.timeMs === 'bigint' ? e : event(e))),
  };
}

let nextId = 1;

/**
 * An event as the host passes it to a sink or a rule. Defaults make an
 * ingested `error` event; `alert: { name, severity, state, ... }` makes an
 * `alert.*` one.
 */
export function event({ id = `test-${nextId++}`, timeMs = Date.now(), eventType = undefined, source = 'ingest', service = undefined, component = undefined, severity = 'warning', detail = undefined, attributes = {}, alert = undefined } = {}) {
  const change = alert && {
    rule: alert.rule ?? 'test_rule',
    name: alert.name ?? 'test_alert',
    labels: labels(alert.labels),
    severity: alert.severity ?? severity,
    state: alert.state ?? 'firing',
    summary: alert.summary ?? '',
    value: alert.value,
    activeSinceMs: big(alert.activeSinceMs ?? timeMs),
  };
  return {
    id,
    timeMs: big(timeMs),
    eventType: eventType ?? (change ? `alert.${change.state}` : 'error'),
    source: change ? 'rule' : source,
    service,
    component,
    severity: change ? change.severity : severity,
    detail,
    attributes: labels(attributes),
    alert: change,
  };
}

/** A message consumed for a collector, as the host passes it to `onMessage`. */
export function message({ source = 'test-queue', routingKey = '', headers = {}, body = '', receivedMs = Date.now() } = {}) {
  return { source, routingKey, headers: labels(headers), body: bytes(body), receivedMs: big(receivedMs) };
}
