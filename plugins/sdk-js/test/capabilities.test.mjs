// The SDK's host and capability wrappers against the test host of testing.mjs.
// Run: node --test plugins/sdk-js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, loadPlugin, failure, redisStatus } from '../src/testing.mjs';

const sdk = await loadPlugin(new URL('../src/wasmon.js', import.meta.url));
const { http, redis, sql, state, rabbitmq, storage, log, config, pluginName, CapabilityError, describe, decodeReply } = sdk;

test('config merges defaults under the manifest, pluginName and log reach the host', () => {
  const host = setup({ name: 'shop', config: { url: 'http://a', n: 2 } });
  assert.deepEqual(config({ n: 1, timeout: '1s' }), { n: 2, timeout: '1s', url: 'http://a' });
  assert.equal(pluginName(), 'shop');
  log.warn('disk', { used: 0.9 }, 3);
  assert.deepEqual(host.logs, [{ level: 'warn', message: 'disk {"used":0.9} 3' }]);
});

test('state stores bytes, strings and JSON, and a write over the quota is a CapabilityError', () => {
  const host = setup({ state: { seen: '4' }, stateQuota: 64 });
  assert.equal(state.getString('seen'), '4');
  assert.equal(state.getJson('missing', 7), 7);
  state.setJson('obj', { a: [1, 2] });
  assert.deepEqual(state.getJson('obj'), { a: [1, 2] });
  state.set('raw', new Uint8Array([1, 2, 3]));
  assert.deepEqual([...state.get('raw')], [1, 2, 3]);
  assert.deepEqual(state.keys().sort(), ['obj', 'raw', 'seen']);
  state.delete('raw');
  assert.equal(state.get('raw'), undefined);
  assert.throws(
    () => state.setString('big', 'x'.repeat(100)),
    (e) => e instanceof CapabilityError && e.capability === 'state' && /quota of 64 bytes exceeded/.test(e.message),
  );
  assert.equal(host.state.has('big'), false);
  state.setString('bad', '{not json');
  assert.throws(() => state.getJson('bad'), { message: /state key "bad" does not hold JSON/ });
});

test('http: requests are sent as the WIT wants them and responses read as JS', () => {
  const host = setup({
    http: (req) => (req.url.endsWith('/status') ? { status: 200, headers: { 'Content-Type': 'application/json' }, body: { up: true }, elapsedUs: 2500 } : 404),
  });
  const r = http.get('http://svc/status', { headers: { accept: 'application/json' }, timeoutMs: 500 });
  assert.equal(r.ok, true);
  assert.deepEqual(r.json(), { up: true });
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.elapsedUs, 2500);
  assert.deepEqual(host.requests[0], { method: 'GET', url: 'http://svc/status', headers: { accept: 'application/json' }, body: undefined, text: undefined, timeoutMs: 500 });

  const missing = http.post('http://svc/other', { a: 1 });
  assert.equal(missing.status, 404);
  assert.equal(missing.ok, false);
  assert.equal(host.requests[1].text, '{"a":1}');
  assert.equal(host.requests[1].headers['content-type'], 'application/json');
  http.put('http://svc/other', 'plain', { headers: [['content-type', 'text/plain']] });
  assert.equal(host.requests[2].headers['content-type'], 'text/plain');
  assert.throws(() => http.request({ method: 'TRACE', url: 'http://svc/' }), { message: /unsupported HTTP method TRACE/ });
  assert.throws(() => http.get('http://svc/status').text() && missing.json(), { message: /not JSON/ });
});

test('http: the host refusing or failing a request is a CapabilityError with its kind', () => {
  setup({ http: { 'http://slow/': failure('timeout'), 'http://big/': failure('too-large', 262144n) } });
  const kindOf = (url) => {
    try {
      http.get(url);
    } catch (e) {
      assert.ok(e instanceof CapabilityError);
      return [e.kind, e.detail, e.message];
    }
    return undefined;
  };
  assert.deepEqual(kindOf('http://slow/'), ['timeout', undefined, 'http timeout']);
  assert.deepEqual(kindOf('http://big/'), ['too-large', 262144, 'http too-large: 262144']);
  assert.equal(kindOf('http://unlisted/')[0], 'not-granted');
  setup();
  assert.match(kindOf('http://any/')[2], /^http not-granted: the test's setup\(\) grants no http/);
});

test('redis: arguments as bytes, the flat reply decoded into a tree', () => {
  const host = setup({
    redis: (name, args) => {
      if (name === 'PING') return redisStatus('PONG');
      if (name === 'XINFO STREAM') return { length: 2, groups: 1, 'first-entry': ['1-0', ['k', 'v']], 'last-id': null, ratio: 0.5 };
      return 2 ** 60;
    },
  });
  assert.equal(redis.command('PING'), 'PONG');
  assert.deepEqual(redis.command('XINFO STREAM', 'jobs'), { length: 2, groups: 1, 'first-entry': ['1-0', ['k', 'v']], 'last-id': null, ratio: 0.5 });
  assert.equal(redis.command('INCRBY', 'n', 5), 2n ** 60n);
  assert.deepEqual(host.commands[2], { name: 'INCRBY', args: ['n', '5'] });
  assert.deepEqual(decodeReply({ nodes: [{ tag: 'data', val: new Uint8Array([0xff, 0xfe]) }] }), new Uint8Array([0xff, 0xfe]));
  assert.throws(() => decodeReply({ nodes: [{ tag: 'array', val: [0] }] }), { message: /malformed redis reply: node 0 points at 0/ });
  setup({ redis: () => failure('forbidden-command', 'FLUSHALL') });
  assert.throws(() => redis.command('FLUSHALL'), (e) => e.kind === 'forbidden-command' && e.message === 'redis forbidden-command: FLUSHALL');
});

test('sql: parameters typed from JS values, rows as arrays and records', () => {
  const host = setup({
    sql: {
      active_chunks: { columns: ['status', 'n', 'oldest'], rows: [['pending', 3, new Date(1000)], ['done', 2n ** 60n, null]] },
    },
  });
  const r = sql.query('active_chunks', 'pending', 5, 1.5, sql.float(2), true, null, new Date(2000));
  assert.deepEqual(r.columns, ['status', 'n', 'oldest']);
  assert.deepEqual(r.rows[0], ['pending', 3, new Date(1000)]);
  assert.deepEqual(r.records[1], { status: 'done', n: 2n ** 60n, oldest: null });
  assert.deepEqual(host.queries[0].params, ['pending', 5, 1.5, 2, true, null, new Date(2000)]);
  assert.throws(() => sql.query('nope'), (e) => e.kind === 'not-granted');
  assert.throws(() => sql.query('active_chunks', { x: 1 }), { message: /sql parameter of type object is not supported/ });
});

test('rabbitmq and storage', () => {
  const host = setup({
    rabbitmq: (exchange) => (exchange === 'closed' ? failure('rejected', 'nack') : undefined),
    storage: {
      health: () => 1500,
      buckets: () => [{ name: 'logs', createdMs: 10 }],
      bucketStats: () => ({ objects: 3, bytes: 2048, truncated: false }),
      head: () => ({ size: 12, etag: '"e"', lastModifiedMs: 20 }),
    },
  });
  rabbitmq.publish('events', 'job.done', { id: 1 }, { source: 'x' });
  assert.deepEqual(host.published, [{ exchange: 'events', routingKey: 'job.done', headers: { source: 'x' }, body: new TextEncoder().encode('{"id":1}'), text: '{"id":1}' }]);
  assert.throws(() => rabbitmq.publish('closed', 'k', 'b'), { message: 'rabbitmq rejected: nack' });
  assert.equal(storage.health(), 1500);
  assert.deepEqual(storage.buckets(), [{ name: 'logs', createdMs: 10 }]);
  assert.deepEqual(storage.bucketStats('logs', 'a/'), { bucket: 'logs', objects: 3, bytes: 2048, truncated: false });
  assert.equal(storage.head('logs', 'k').size, 12);
  setup();
  assert.throws(() => storage.health(), (e) => e.kind === 'not-granted' && e.capability === 'storage');
});

test("describe reads StarlingMonkey's stack frames too", () => {
  const e = new TypeError('x is null');
  e.stack = 'collect@plugin.js:7:34\nguard/<@sdk/wasmon.js:141:14\n';
  assert.equal(describe(e), 'TypeError: x is null at collect@plugin.js:7:34');
  assert.equal(describe({ payload: { tag: 'timeout' } }), 'a host call failed: {"tag":"timeout"}');
  assert.equal(describe('plain'), 'plain');

  // Such an error thrown by a plugin: one log line with the message, then the frames.
  const host = setup();
  const p = sdk.collector({
    collect() {
      throw e;
    },
  });
  p.init();
  assert.throws(() => p.collect(), { message: 'TypeError: x is null at collect@plugin.js:7:34' });
  assert.deepEqual(host.logs, [{ level: 'error', message: 'collect threw TypeError: x is null\ncollect@plugin.js:7:34\nguard/<@sdk/wasmon.js:141:14' }]);
});

test('the test loader names what it provides when a plugin imports something else', async () => {
  await assert.rejects(import('wasmon:plugin/host@0.1.0'), { message: /the wasmon SDK's test loader provides wasmon:plugin\/types@0.2.0, wasmon:plugin\/host@0.2.0/ });
});
