// Unit test of the json_status collector under plain Node: `npm test` here,
// or `node --test plugins/collector-js-example/` from the repository root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, loadPlugin, failure } from '../sdk-js/src/testing.mjs';

const plugin = await loadPlugin(new URL('./plugin.js', import.meta.url));

const config = {
  timeout: '1s',
  targets: [
    { name: 'api', url: 'http://api:8080/status', expect: { status: 'ok' }, fields: { api_queue_depth: 'queues.jobs.depth', api_ready: 'ready', api_draining: 'draining', api_load: 'load' } },
    { name: 'db', url: 'http://db:9000/health', timeout: '250ms' },
  ],
};

// { "name{label=value}": value } of a collect(), for readable assertions.
const byName = (samples) => Object.fromEntries(samples.map((s) => [`${s.name}{${s.labels.map((l) => `${l.name}=${l.value}`).join(',')}}`, s.value]));

test('fields become gauges; up needs 2xx, JSON and every expected value', () => {
  const host = setup({
    config,
    http: {
      'GET http://api:8080/status': { body: { status: 'ok', ready: true, draining: false, load: '0.25', queues: { jobs: { depth: 12 } } }, elapsedUs: 1500 },
      'GET http://db:9000/health': { status: 200, body: { status: 'degraded' } },
    },
  });
  plugin.init();
  assert.deepEqual(byName(plugin.collect()), {
    'json_status_http_status_code{target=api}': 200,
    'json_status_duration_seconds{target=api}': 0.0015,
    'api_queue_depth{target=api}': 12,
    'api_ready{target=api}': 1,
    'api_draining{target=api}': 0,
    'api_load{target=api}': 0.25,
    'json_status_fields_missing{target=api}': 0,
    'json_status_up{target=api}': 1,
    'json_status_http_status_code{target=db}': 200,
    'json_status_duration_seconds{target=db}': 0.001,
    'json_status_fields_missing{target=db}': 0,
    'json_status_up{target=db}': 1,
  });
  assert.deepEqual(host.requests.map((r) => [r.url, r.timeoutMs, r.headers.accept]), [
    ['http://api:8080/status', 1000, 'application/json'],
    ['http://db:9000/health', 250, 'application/json'],
  ]);
});

test('a failing target is down with the reason logged; the others are still collected', () => {
  const host = setup({
    config,
    http: {
      'GET http://api:8080/status': { body: { status: 'starting', queues: {} } },
      'GET http://db:9000/health': failure('timeout'),
    },
  });
  plugin.init();
  const got = byName(plugin.collect());
  assert.equal(got['json_status_up{target=api}'], 0);
  assert.equal(got['json_status_fields_missing{target=api}'], 4);
  assert.equal(got['json_status_up{target=db}'], 0);
  assert.equal(got['json_status_http_status_code{target=db}'], undefined);
  assert.deepEqual(
    host.logs.filter((l) => l.level === 'warn').map((l) => l.message),
    ['api: status is "starting", expected "ok"', 'db: http://db:9000/health: timeout'],
  );
});

test('an error status or a body that is not JSON is down, with the status reported', () => {
  const host = setup({ config, http: { 'GET http://api:8080/status': 503, 'GET http://db:9000/health': '<html>oops</html>' } });
  plugin.init();
  const got = byName(plugin.collect());
  assert.equal(got['json_status_http_status_code{target=api}'], 503);
  assert.equal(got['json_status_up{target=api}'], 0);
  assert.equal(got['json_status_up{target=db}'], 0);
  assert.match(host.logs.at(-1).message, /^db: http:\/\/db:9000\/health: the response \(HTTP 200\) is not JSON/);
});

test('every [config] mistake names its key', () => {
  const cases = [
    [{}, /needs at least one \[\[config.targets\]\]/],
    [{ targets: [{ url: 'http://a/' }] }, /targets\[0\].name must be a non-empty string/],
    [{ targets: [{ name: 'a', url: 'ftp://a/' }] }, /targets\[0\].url must be an http/],
    [{ targets: [{ name: 'a', url: 'http://a/' }, { name: 'a', url: 'http://b/' }] }, /targets\[1\].name "a" is used twice/],
    [{ targets: [{ name: 'a', url: 'http://a/', fields: { 'bad-name': 'x' } }] }, /"bad-name" is not a valid metric name/],
    [{ timeout: 'soon', targets: [{ name: 'a', url: 'http://a/' }] }, /\[config\] timeout must be a duration/],
  ];
  for (const [cfg, message] of cases) {
    setup({ config: cfg });
    assert.throws(() => plugin.init(), { message });
  }
});

test('the shipped manifest allow-lists exactly the URLs it fetches', async () => {
  // The [config] of json_status.toml, as the host hands it over (TOML -> JSON), checked by init.
  const { readFile } = await import('node:fs/promises');
  const toml = await readFile(new URL('./json_status.toml', import.meta.url), 'utf8');
  const urls = [...toml.matchAll(/^url = "([^"]+)"/gm)].map((m) => m[1]);
  assert.deepEqual(urls, ['http://127.0.0.1:9400/readyz', 'http://127.0.0.1:9400/healthz']);
  assert.match(toml, /^allow = \["127\.0\.0\.1:9400"\]/m);
  assert.match(toml, /^self = "read"/m);
});
