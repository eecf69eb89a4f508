// wasmon JavaScript SDK: write collectors, rules and sinks for wasmon as
// plain classes, built into WebAssembly components by componentize-js.
//
// One ES module with no dependencies. A plugin imports it by relative path
// (`import { collector, sample } from './sdk/wasmon.js'`); componentize-js
// bundles it. It wraps the WIT imports `wasmon:plugin/*@0.2.0`, which exist
// only inside the component (and, for unit tests under Node, through the
// loader in `testing.mjs`).
//
// What it does for the author:
// - `collector(Class)` / `rule(Class)` / `sink(Class)` build the world's
//   exports: the class is constructed in `init` (its constructor gets the
//   manifest's `[config]`), then `collect()`, `onMessage(message)`,
//   `evaluate(input)` or `deliver(events)` are its methods.
// - Every throw becomes the WIT error the host shows in `last_error`:
//   `PluginError` keeps its message; anything else gets its type and first
//   stack frame (`TypeError: ... at collect@plugin.js:7:34`) and its stack is
//   written to the host's log. A sink's error is retryable unless it is a
//   `PermanentError` (or a capability refusal that retrying cannot fix).
// - Values are JavaScript's: labels are plain objects (`{ host: 'a' }`),
//   times and sizes are Numbers (the WIT's u64 arrive as BigInt), bodies are
//   strings, bytes or JSON.
// - `http`, `redis`, `sql`, `rabbitmq`, `storage`: the capabilities, throwing
//   `CapabilityError(kind, detail)` when the host refuses or fails a call.

import * as host from 'wasmon:plugin/host@0.2.0';
import * as witHttp from 'wasmon:plugin/http@0.2.0';
import * as witRedis from 'wasmon:plugin/redis@0.2.0';
import * as witSql from 'wasmon:plugin/sql@0.2.0';
import * as witRabbitmq from 'wasmon:plugin/rabbitmq@0.2.0';
import * as witStorage from 'wasmon:plugin/storage@0.2.0';

// ---------------------------------------------------------------- errors

/** An expected failure: its message is shown as it is (no stack frame). */
export class PluginError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'PluginError';
  }
}

/** A sink's failure that retrying cannot fix: the batch is dead-lettered. */
export class PermanentError extends PluginError {
  constructor(message, options) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/**
 * A capability call the host refused or that failed. `kind` is the WIT error
 * case (`not-granted`, `timeout`, `transport`, `connection`, `server`, ...),
 * `detail` its text (or the size cap, for `too-large`), `capability` which one.
 */
export class CapabilityError extends PluginError {
  constructor(kind, detail, capability = '') {
    const what = capability ? `${capability} ${kind}` : kind;
    super(detail === undefined || detail === '' ? what : `${what}: ${detail}`);
    this.name = 'CapabilityError';
    this.kind = kind;
    this.detail = detail;
    this.capability = capability;
  }
}

// Errors retrying cannot fix: a sink's batch is dead-lettered for these.
const PERMANENT_KINDS = new Set(['not-granted', 'invalid-request', 'forbidden-command']);

// An import's error arrives as a ComponentError whose `payload` is the WIT
// error; this turns it into a CapabilityError and rethrows anything else.
function rethrow(capability, e) {
  if (e !== null && typeof e === 'object' && 'payload' in e) {
    const p = e.payload;
    if (p !== null && typeof p === 'object' && 'tag' in p) {
      const detail = typeof p.val === 'bigint' ? Number(p.val) : p.val;
      throw new CapabilityError(p.tag, detail, capability);
    }
    if (p !== null && typeof p === 'object' && 'message' in p) {
      throw new CapabilityError('error', p.message, capability);
    }
    throw new CapabilityError('error', String(p), capability);
  }
  throw e;
}

function call(capability, fn) {
  try {
    return fn();
  } catch (e) {
    return rethrow(capability, e);
  }
}

// The first stack frame, in StarlingMonkey's form (`collect@plugin.js:7:34`)
// or Node's (`    at Demo.collect (file:///x/plugin.js:7:34)`).
function firstFrame(stack) {
  if (typeof stack !== 'string') return '';
  for (const raw of stack.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('at ')) return line.slice(3);
    if (/^[^\s]*@\S+:\d+:\d+$/.test(line)) return line;
  }
  return '';
}

/** The one-line text a throw becomes in the host's `last_error`. */
export function describe(e) {
  if (e instanceof PluginError) return e.message;
  if (e instanceof Error) {
    const frame = firstFrame(e.stack);
    return `${e.name}: ${e.message}${frame ? ` at ${frame}` : ''}`;
  }
  if (e !== null && typeof e === 'object') {
    if ('payload' in e) return `a host call failed: ${safeJson(e.payload)}`;
    if (typeof e.message === 'string') return e.message;
    return safeJson(e);
  }
  return String(e);
}

function safeJson(v) {
  try {
    return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? Number(x) : x));
  } catch {
    return String(v);
  }
}

function logStack(what, e) {
  if (e instanceof PluginError || !(e instanceof Error) || !e.stack) return;
  // Node's stack starts with the message; StarlingMonkey's has only frames.
  const head = `${e.name}: ${e.message}`;
  const stack = e.stack.trimEnd();
  log.error(`${what} threw ${stack.startsWith(head) ? stack : `${head}\n${stack}`}`);
}

// Runs one export; any throw becomes the WIT `error` record.
function guard(what, fn) {
  return (...args) => {
    try {
      return fn(...args);
    } catch (e) {
      logStack(what, e);
      throw { message: describe(e) };
    }
  };
}

// A sink's export: any throw becomes `delivery-error`.
function guardDelivery(fn) {
  return (...args) => {
    try {
      fn(...args);
    } catch (e) {
      logStack('deliver', e);
      const permanent =
        e instanceof PermanentError || (e instanceof CapabilityError && PERMANENT_KINDS.has(e.kind));
      throw { tag: permanent ? 'permanent' : 'retryable', val: describe(e) };
    }
  };
}

// ------------------------------------------------------------ host basics

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** Lines in the host's log, tagged with the plugin's name (rate limited by the manifest). */
export const log = Object.freeze(
  Object.fromEntries(LEVELS.map((level) => [level, (...parts) => host.log(level, parts.map(text).join(' '))])),
);

function text(v) {
  if (typeof v === 'string') return v;
  if (v instanceof Error) {
    const head = `${v.name}: ${v.message}`;
    return !v.stack || v.stack.startsWith(head) ? v.stack || head : `${head}\n${v.stack}`;
  }
  if (v !== null && typeof v === 'object') return safeJson(v);
  return String(v);
}

/** The plugin's name: its file stem in the plugin directory. */
export const pluginName = () => host.pluginName();

/**
 * The manifest's `[config]` table as an object, over `defaults`:
 * `config({ url: 'http://127.0.0.1:8080/status' })`.
 */
export function config(defaults = {}) {
  const json = host.configJson();
  let parsed;
  try {
    parsed = json ? JSON.parse(json) : {};
  } catch (e) {
    throw new PluginError(`the host's [config] is not JSON: ${e.message}`);
  }
  return { ...defaults, ...parsed };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** Bytes of a string, bytes, or anything else as JSON. */
export function toBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return encoder.encode(v);
  return encoder.encode(JSON.stringify(v));
}

/**
 * The plugin's key-value state: survives reloads and restarts, bounded by the
 * manifest's `state_quota` (a write over it throws a CapabilityError).
 */
export const state = Object.freeze({
  /** The bytes under `key`, or `undefined`. */
  get: (key) => host.stateGet(key) ?? undefined,
  /** Stores bytes (a string is stored as UTF-8, anything else as JSON). */
  set: (key, value) => call('state', () => host.stateSet(key, toBytes(value))),
  delete: (key) => host.stateDelete(key),
  keys: () => host.stateKeys(),
  getString(key, fallback = undefined) {
    const bytes = host.stateGet(key);
    return bytes === undefined ? fallback : decoder.decode(bytes);
  },
  setString: (key, value) => call('state', () => host.stateSet(key, encoder.encode(String(value)))),
  /** The JSON value under `key`, or `fallback` when there is none. */
  getJson(key, fallback = undefined) {
    const bytes = host.stateGet(key);
    if (bytes === undefined) return fallback;
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch (e) {
      throw new PluginError(`state key "${key}" does not hold JSON: ${e.message}`);
    }
  },
  setJson: (key, value) => call('state', () => host.stateSet(key, encoder.encode(JSON.stringify(value)))),
});

// ------------------------------------------------- samples, alerts, labels

/** `{ host: 'a' }` or `[{ name, value }]` or `[[name, value]]` -> the WIT's label list. */
export function labelList(labels) {
  if (labels === undefined || labels === null) return [];
  if (Array.isArray(labels)) {
    return labels.map((l) => (Array.isArray(l) ? { name: String(l[0]), value: String(l[1]) } : { name: String(l.name), value: String(l.value) }));
  }
  if (labels instanceof Map) return [...labels].map(([name, value]) => ({ name: String(name), value: String(value) }));
  return Object.entries(labels).map(([name, value]) => ({ name, value: String(value) }));
}

/** The WIT's label list -> `{ name: value }`. */
export function labelObject(list) {
  const out = {};
  for (const l of list ?? []) out[l.name] = l.value;
  return out;
}

function timestamp(v, where) {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Date) v = v.getTime();
  if (typeof v === 'bigint') v = Number(v);
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new PluginError(`${where}: timestampMs must be Unix milliseconds (a Number or a Date), got ${String(v)}`);
  }
  return Math.trunc(v);
}

/**
 * One measurement: `sample('queue_depth', 12, { queue: 'jobs' }, { help: 'Jobs waiting' })`.
 * `counter: true` for a monotonically increasing count (exported with `_total`).
 */
export function sample(name, value, labels = undefined, { counter = false, help = undefined, timestampMs = undefined } = {}) {
  return {
    name,
    kind: counter ? 'counter' : 'gauge',
    labels: labelList(labels),
    value: Number(value),
    help,
    timestampMs: timestamp(timestampMs, `sample ${name}`),
  };
}

const SEVERITIES = ['ok', 'warning', 'critical'];

/**
 * One checked condition of a rule: `alert('disk_full', 'critical', 'disk at 97%', { mount: '/' }, 0.97)`.
 * Severity `ok` (or not returning it any more) resolves it.
 */
export function alert(name, severity, summary, labels = undefined, value = undefined) {
  return checkAlert({ name, severity, summary, labels, value }, 0);
}

function checkSample(s, i) {
  if (s === null || typeof s !== 'object') throw new PluginError(`sample ${i}: expected an object (use sample(...)), got ${String(s)}`);
  const where = `sample ${i} (${s.name})`;
  if (typeof s.name !== 'string' || s.name === '') throw new PluginError(`${where}: name must be a non-empty string`);
  const kind = s.kind ?? 'gauge';
  if (kind !== 'gauge' && kind !== 'counter') throw new PluginError(`${where}: kind must be "gauge" or "counter", got "${kind}"`);
  const value = typeof s.value === 'bigint' ? Number(s.value) : s.value;
  if (typeof value !== 'number') throw new PluginError(`${where}: value must be a number, got ${typeof s.value}`);
  return {
    name: s.name,
    kind,
    labels: labelList(s.labels),
    value,
    help: s.help ?? undefined,
    timestampMs: timestamp(s.timestampMs, where),
  };
}

function checkAlert(a, i) {
  if (a === null || typeof a !== 'object') throw new PluginError(`alert ${i}: expected an object (use alert(...)), got ${String(a)}`);
  const where = `alert ${i} (${a.name})`;
  if (typeof a.name !== 'string' || a.name === '') throw new PluginError(`${where}: name must be a non-empty string`);
  if (!SEVERITIES.includes(a.severity)) throw new PluginError(`${where}: severity must be one of ${SEVERITIES.join(', ')}, got "${a.severity}"`);
  const value = a.value === undefined || a.value === null ? undefined : Number(a.value);
  return { name: a.name, labels: labelList(a.labels), severity: a.severity, summary: String(a.summary ?? ''), value };
}

function list(what, out, check) {
  if (out instanceof Promise) {
    throw new PluginError(`${what} returned a Promise: wasmon calls plugins synchronously, so make it a plain (not async) method`);
  }
  if (out === undefined || out === null) return [];
  if (!Array.isArray(out)) throw new PluginError(`${what} must return an array, got ${typeof out}`);
  return out.map(check);
}

// ------------------------------------------------ inputs, JavaScript style

const num = (v) => (typeof v === 'bigint' ? Number(v) : v);
const optNum = (v) => (v === undefined || v === null ? undefined : num(v));

function inSample(s) {
  return { ...s, labels: labelObject(s.labels), timestampMs: optNum(s.timestampMs) };
}

function inAlertChange(a) {
  if (!a) return undefined;
  return { ...a, labels: labelObject(a.labels), activeSinceMs: num(a.activeSinceMs) };
}

function inEvent(e) {
  return { ...e, timeMs: num(e.timeMs), attributes: labelObject(e.attributes), alert: inAlertChange(e.alert) };
}

function inRuleInput(input) {
  return {
    nowMs: num(input.nowMs),
    samples: (input.samples ?? []).map(inSample),
    services: (input.services ?? []).map((s) => ({ ...s, lastSeenMs: num(s.lastSeenMs) })),
    events: (input.events ?? []).map(inEvent),
  };
}

function inMessage(m) {
  return { ...m, headers: labelObject(m.headers), receivedMs: num(m.receivedMs), text: () => decoder.decode(m.body), json: () => JSON.parse(decoder.decode(m.body)) };
}

// ------------------------------------------------------------ the worlds

function construct(Cls, what) {
  if (typeof Cls === 'function') return new Cls(config());
  if (Cls !== null && typeof Cls === 'object') {
    if (typeof Cls.init === 'function') Cls.init(config());
    return Cls;
  }
  throw new PluginError(`${what}(...) needs a class or an object with methods, got ${typeof Cls}`);
}

function method(p, name) {
  if (p === undefined) throw new PluginError(`${name} was called before init`);
  if (typeof p[name] !== 'function') throw new PluginError(`the plugin has no ${name}() method`);
  return p[name].bind(p);
}

/**
 * The collector world's exports:
 * `export const { init, collect, onMessage } = collector(MyCollector);`
 * `collect()` returns samples; `onMessage(message)` (optional) handles a
 * message the host consumed for it (`message.text()`, `message.json()`).
 */
export function collector(Cls) {
  let p;
  return {
    init: guard('init', () => {
      p = undefined;
      p = construct(Cls, 'collector');
    }),
    collect: guard('collect', () => list('collect()', method(p, 'collect')(), checkSample)),
    onMessage: guard('onMessage', (m) => list('onMessage()', method(p, 'onMessage')(inMessage(m)), checkSample)),
  };
}

/**
 * The rule world's exports: `export const { init, evaluate } = rule(MyRule);`
 * `evaluate({ nowMs, samples, services, events })` returns alerts.
 */
export function rule(Cls) {
  let p;
  return {
    init: guard('init', () => {
      p = undefined;
      p = construct(Cls, 'rule');
    }),
    evaluate: guard('evaluate', (input) => list('evaluate()', method(p, 'evaluate')(inRuleInput(input)), checkAlert)),
  };
}

/**
 * The sink world's exports: `export const { init, deliver } = sink(MySink);`
 * `deliver(events)` returns nothing; a throw is retried later unless it is a
 * `PermanentError` (the batch is then dead-lettered).
 */
export function sink(Cls) {
  let p;
  return {
    init: guard('init', () => {
      p = undefined;
      p = construct(Cls, 'sink');
    }),
    deliver: guardDelivery((batch) => {
      const out = method(p, 'deliver')(batch.map(inEvent));
      if (out instanceof Promise) {
        throw new PermanentError('deliver() returned a Promise: wasmon calls plugins synchronously, so make it a plain (not async) method');
      }
    }),
  };
}

// ---------------------------------------------------------------- http

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];

/** An HTTP response: `status`, `ok`, `headers` (lower-case names), `body` bytes, `elapsedUs`. */
export class Response {
  constructor(r) {
    this.status = r.status;
    this.headers = {};
    for (const h of r.headers ?? []) this.headers[h.name.toLowerCase()] = h.value;
    this.body = r.body ?? new Uint8Array();
    this.elapsedUs = num(r.elapsedUs ?? 0);
  }
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  text() {
    return decoder.decode(this.body);
  }
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw new PluginError(`the response (HTTP ${this.status}) is not JSON: ${e.message}`);
    }
  }
}

function requestBody(body, headers) {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string' || body instanceof Uint8Array || ArrayBuffer.isView(body) || body instanceof ArrayBuffer) return toBytes(body);
  if (!headers.some((h) => h.name.toLowerCase() === 'content-type')) headers.push({ name: 'content-type', value: 'application/json' });
  return toBytes(body);
}

/**
 * Outbound HTTP to the hosts the manifest allow-lists. Returns a Response for
 * any status; throws CapabilityError (`not-granted`, `invalid-request`,
 * `timeout`, `transport`, `too-large`) when no response came.
 */
export const http = Object.freeze({
  request({ method = 'GET', url, headers = undefined, body = undefined, timeoutMs = undefined }) {
    const m = String(method).toLowerCase();
    if (!METHODS.includes(m)) throw new PluginError(`unsupported HTTP method ${method}: use one of ${METHODS.join(', ')}`);
    const hs = labelList(headers);
    const b = requestBody(body, hs);
    const r = call('http', () => witHttp.send({ method: m, url: String(url), headers: hs, body: b, timeoutMs }));
    return new Response(r);
  },
  get: (url, opts = {}) => http.request({ ...opts, method: 'get', url }),
  head: (url, opts = {}) => http.request({ ...opts, method: 'head', url }),
  delete: (url, opts = {}) => http.request({ ...opts, method: 'delete', url }),
  /** `body`: a string, bytes, or anything else (sent as JSON with content-type application/json). */
  post: (url, body, opts = {}) => http.request({ ...opts, method: 'post', url, body }),
  put: (url, body, opts = {}) => http.request({ ...opts, method: 'put', url, body }),
  patch: (url, body, opts = {}) => http.request({ ...opts, method: 'patch', url, body }),
});

// ---------------------------------------------------------------- redis

const int = (v) => (typeof v === 'bigint' && Number.isSafeInteger(Number(v)) ? Number(v) : v);

function redisValue(node) {
  switch (node.tag) {
    case 'nil':
      return null;
    case 'int':
      return int(node.val);
    case 'data':
      try {
        return strictDecoder.decode(node.val);
      } catch {
        return node.val;
      }
    case 'status':
    case 'double':
    case 'boolean':
      return node.val;
    default:
      throw new PluginError(`unknown redis reply node ${node.tag}`);
  }
}

/**
 * A reply's flat node list as a tree: arrays are arrays, maps are objects,
 * bulk strings are strings (bytes when not UTF-8), integers Numbers (BigInt
 * beyond 2^53), nil is null.
 */
export function decodeReply(reply) {
  const nodes = reply?.nodes ?? [];
  if (nodes.length === 0) return null;
  const at = (i, parent) => {
    if (i <= parent || i >= nodes.length) throw new PluginError(`malformed redis reply: node ${parent} points at ${i}`);
    return decode(i);
  };
  const decode = (i) => {
    const node = nodes[i];
    if (node.tag === 'array') return [...node.val].map((c) => at(c, i));
    if (node.tag === 'pairs') {
      const out = {};
      for (const [k, v] of node.val) out[String(at(k, i))] = at(v, i);
      return out;
    }
    return redisValue(node);
  };
  return decode(0);
}

/**
 * Redis commands on the manifest's server:
 * `redis.command('XLEN', 'jobs')`, `redis.command('XINFO STREAM', 'jobs')`.
 * Arguments: strings, numbers or bytes. Returns the decoded reply.
 */
export const redis = Object.freeze({
  command(name, ...args) {
    const bytes = args.map((a) => (a instanceof Uint8Array ? a : encoder.encode(String(a))));
    return decodeReply(call('redis', () => witRedis.command(String(name), bytes)));
  },
  /** The reply as the WIT gives it (`{ nodes }`), for replies decodeReply does not suit. */
  raw(name, ...args) {
    const bytes = args.map((a) => (a instanceof Uint8Array ? a : encoder.encode(String(a))));
    return call('redis', () => witRedis.command(String(name), bytes));
  },
});

// ------------------------------------------------------------------ sql

function sqlParam(v) {
  if (v === undefined || v === null) return { tag: 'null' };
  if (typeof v === 'boolean') return { tag: 'boolean', val: v };
  if (typeof v === 'bigint') return { tag: 'int', val: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { tag: 'int', val: BigInt(v) } : { tag: 'float', val: v };
  if (typeof v === 'string') return { tag: 'text', val: v };
  if (v instanceof Date) return { tag: 'timestamp', val: BigInt(v.getTime()) * 1000n };
  if (v instanceof Uint8Array) return { tag: 'bytes', val: v };
  if (typeof v === 'object' && typeof v.tag === 'string') return v;
  throw new PluginError(`sql parameter of type ${typeof v} is not supported: use null, a boolean, number, bigint, string, Date or Uint8Array`);
}

function sqlCell(v) {
  switch (v.tag) {
    case 'null':
      return null;
    case 'int':
      return int(v.val);
    case 'timestamp':
      return new Date(Number(v.val / 1000n));
    default:
      return v.val;
  }
}

/**
 * Named queries of the manifest (`[capabilities.sql.queries]`):
 * `sql.query('active_chunks', 'pending')` -> `{ columns, rows, records }`;
 * `rows` are arrays in column order, `records` objects by column name.
 * Integers are Numbers (BigInt beyond 2^53), timestamps Dates.
 */
export const sql = Object.freeze({
  query(name, ...params) {
    const r = call('sql', () => witSql.query(String(name), params.map(sqlParam)));
    const rows = r.rows.map((row) => row.map(sqlCell));
    const records = rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])));
    return { columns: r.columns, rows, records };
  },
  /** Forces a float parameter (a JavaScript integer is sent as `int` otherwise). */
  float: (v) => ({ tag: 'float', val: Number(v) }),
});

// ------------------------------------------------------ rabbitmq, storage

/** Publishing to allow-listed RabbitMQ exchanges; `body` a string, bytes or JSON. */
export const rabbitmq = Object.freeze({
  publish(exchange, routingKey, body, headers = undefined) {
    call('rabbitmq', () => witRabbitmq.publish(String(exchange), String(routingKey), labelList(headers), toBytes(body)));
  },
});

/** Read-only S3-compatible storage at the manifest's endpoint; sizes and times are Numbers. */
export const storage = Object.freeze({
  /** The round trip of a signed ListBuckets, in microseconds. */
  health: () => num(call('storage', () => witStorage.health())),
  buckets: () => call('storage', () => witStorage.buckets()).map((b) => ({ name: b.name, createdMs: optNum(b.createdMs) })),
  bucketStats(bucket, prefix = undefined) {
    const u = call('storage', () => witStorage.bucketStats(String(bucket), prefix));
    return { bucket: u.bucket, objects: num(u.objects), bytes: num(u.bytes), truncated: u.truncated };
  },
  head(bucket, key) {
    const o = call('storage', () => witStorage.head(String(bucket), String(key)));
    return { ...o, size: num(o.size), lastModifiedMs: optNum(o.lastModifiedMs) };
  },
});
