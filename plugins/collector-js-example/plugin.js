// json_status: a wasmon collector in JavaScript that turns JSON status
// endpoints into samples, through the host's http capability (like
// Prometheus' json_exporter, for the few numbers a health page carries).
//
// For each `[[config.targets]]` it GETs `url` and reports, labelled
// `target`:
//   json_status_up                 1 when the endpoint answered 2xx with JSON
//                                  matching `expect`, else 0
//   json_status_http_status_code   the HTTP status (absent when no response)
//   json_status_duration_seconds   request to end of body
//   json_status_fields_missing     configured fields absent or not numeric
//   <metric>                       one gauge per `fields` entry: metric name =
//                                  dotted JSON path (`queues.jobs.depth`,
//                                  `workers.0.busy`); numbers, booleans (1/0)
//                                  and numeric strings count
// A target that fails (timeout, refused, not JSON) is `up` 0 and the reason
// is logged; the other targets are still collected.

import { collector, sample, http, log, CapabilityError, PluginError } from '../sdk-js/src/wasmon.js';

const METRIC = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Milliseconds of "1s", "500ms", "2m" or a number of seconds. */
export function duration(v, key) {
  if (typeof v === 'number' && v > 0) return v * 1000;
  const m = typeof v === 'string' && /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v.trim());
  if (!m) throw new PluginError(`[config] ${key} must be a duration like "500ms", "1s" or "2m", got ${JSON.stringify(v)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000 }[m[2]];
}

/** The value at a dotted path of a parsed JSON document, or undefined. */
export function lookup(doc, path) {
  let v = doc;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || !(part in v)) return undefined;
    v = v[part];
  }
  return v;
}

/** A JSON value as a sample value: numbers, booleans (1/0), numeric strings; else undefined. */
export function numeric(v) {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

/** Validates [config]; every mistake names its key. */
export function parseConfig(config) {
  const timeoutMs = duration(config.timeout ?? '1s', 'timeout');
  if (!Array.isArray(config.targets) || config.targets.length === 0) {
    throw new PluginError('[config] needs at least one [[config.targets]] with a name and a url');
  }
  const names = new Set();
  const targets = config.targets.map((t, i) => {
    const key = `targets[${i}]`;
    if (typeof t.name !== 'string' || t.name === '') throw new PluginError(`[config] ${key}.name must be a non-empty string`);
    if (names.has(t.name)) throw new PluginError(`[config] ${key}.name "${t.name}" is used twice`);
    names.add(t.name);
    if (typeof t.url !== 'string' || !/^https?:\/\//.test(t.url)) throw new PluginError(`[config] ${key}.url must be an http:// or https:// URL, got ${JSON.stringify(t.url)}`);
    const fields = Object.entries(t.fields ?? {});
    for (const [metric, path] of fields) {
      if (!METRIC.test(metric)) throw new PluginError(`[config] ${key}.fields: "${metric}" is not a valid metric name ([a-zA-Z_][a-zA-Z0-9_]*)`);
      if (typeof path !== 'string' || path === '') throw new PluginError(`[config] ${key}.fields.${metric} must be a dotted JSON path, e.g. "queues.jobs.depth"`);
    }
    const expect = Object.entries(t.expect ?? {});
    return { name: t.name, url: t.url, fields, expect, headers: t.headers ?? {}, timeoutMs: t.timeout === undefined ? timeoutMs : duration(t.timeout, `${key}.timeout`) };
  });
  return { targets };
}

function probe(t) {
  const labels = { target: t.name };
  const out = [];
  let up = 0;
  try {
    const r = http.get(t.url, { headers: { accept: 'application/json', ...t.headers }, timeoutMs: t.timeoutMs });
    out.push(sample('json_status_http_status_code', r.status, labels, { help: 'HTTP status of the last status request.' }));
    out.push(sample('json_status_duration_seconds', r.elapsedUs / 1e6, labels, { help: 'Time from sending the status request to the end of its body.' }));
    if (!r.ok) throw new PluginError(`HTTP ${r.status}`);
    const doc = r.json();
    const wrong = t.expect.filter(([path, want]) => lookup(doc, path) !== want);
    up = wrong.length === 0 ? 1 : 0;
    if (!up) log.warn(`${t.name}: ${wrong.map(([p, w]) => `${p} is ${JSON.stringify(lookup(doc, p))}, expected ${JSON.stringify(w)}`).join('; ')}`);
    let missing = 0;
    for (const [metric, path] of t.fields) {
      const v = numeric(lookup(doc, path));
      if (v === undefined) missing += 1;
      else out.push(sample(metric, v, labels, { help: `${path} of the ${t.name} status document.` }));
    }
    out.push(sample('json_status_fields_missing', missing, labels, { help: 'Configured fields absent from the status document or not numeric.' }));
  } catch (e) {
    if (!(e instanceof PluginError)) throw e; // a bug: let the SDK report it with its stack
    const reason = e instanceof CapabilityError ? `${e.kind}${e.detail !== undefined ? `: ${e.detail}` : ''}` : e.message;
    log.warn(`${t.name}: ${t.url}: ${reason}`);
  }
  out.push(sample('json_status_up', up, labels, { help: '1 when the status endpoint answered 2xx with JSON matching expect.' }));
  return out;
}

class JsonStatus {
  constructor(config) {
    this.config = parseConfig(config);
    log.info(`watching ${this.config.targets.map((t) => `${t.name}=${t.url}`).join(', ')}`);
  }

  collect() {
    return this.config.targets.flatMap(probe);
  }
}

export const { init, collect, onMessage } = collector(JsonStatus);
