// The SDK's exports wrappers (collector, rule, sink): lifecycle, conversions
// from the WIT shapes, and what a throw becomes. Run: node --test plugins/sdk-js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, loadPlugin, ruleInput, event, message } from '../src/testing.mjs';

const sdk = await loadPlugin(new URL('../src/wasmon.js', import.meta.url));
const { collector, rule, sink, sample, alert, PluginError, PermanentError, CapabilityError } = sdk;

test('a collector is constructed in init with the [config] and its samples are checked', () => {
  setup({ config: { site: 'eu' } });
  let built = 0;
  const p = collector(
    class {
      constructor(config) {
        built += 1;
        this.site = config.site;
      }
      collect() {
        return [sample('jobs_waiting', 3n, { site: this.site }, { help: 'h', timestampMs: new Date(5000) }), { name: 'raw', value: 2, labels: { a: 1 } }];
      }
    },
  );
  assert.throws(() => p.collect(), { message: 'collect was called before init' });
  p.init();
  assert.equal(built, 1);
  assert.deepEqual(p.collect(), [
    { name: 'jobs_waiting', kind: 'gauge', labels: [{ name: 'site', value: 'eu' }], value: 3, help: 'h', timestampMs: 5000 },
    { name: 'raw', kind: 'gauge', labels: [{ name: 'a', value: '1' }], value: 2, help: undefined, timestampMs: undefined },
  ]);
});

test('a plain object works as a plugin, with an optional init(config)', () => {
  setup({ config: { n: 2 } });
  const p = collector({
    init(config) {
      this.n = config.n;
    },
    collect() {
      return [sample('n', this.n, undefined, { counter: true })];
    },
  });
  p.init();
  assert.deepEqual(p.collect()[0].kind, 'counter');
  assert.equal(p.collect()[0].value, 2);
});

test('bad return values are errors that say what to fix', () => {
  setup();
  const cases = [
    [() => 5, /collect\(\) must return an array, got number/],
    [async () => [], /returned a Promise: wasmon calls plugins synchronously/],
    [() => [{ name: 'x', value: 'high' }], /sample 0 \(x\): value must be a number, got string/],
    [() => [{ name: 'x', value: 1, kind: 'histogram' }], /kind must be "gauge" or "counter"/],
    [() => [sample('x', 1, {}, { timestampMs: -1 })], /timestampMs must be Unix milliseconds/],
  ];
  for (const [collect, message] of cases) {
    const p = collector({ collect });
    p.init();
    assert.throws(() => p.collect(), { message });
  }
});

test('an unexpected throw keeps its type and first frame, and its stack is logged', () => {
  const host = setup();
  const p = collector({
    collect() {
      return null.boom;
    },
  });
  p.init();
  let thrown;
  try {
    p.collect();
  } catch (e) {
    thrown = e;
  }
  assert.ok(!(thrown instanceof Error), 'the WIT error is a plain record');
  assert.match(thrown.message, /^TypeError: .*boom.* at .*worlds\.test\.mjs:\d+:\d+/);
  assert.equal(host.logs.length, 1);
  assert.equal(host.logs[0].level, 'error');
  assert.match(host.logs[0].message, /^collect threw TypeError: [^\n]*\n\s+at /);
});

test('a PluginError is shown as it is and not logged', () => {
  const host = setup();
  const p = collector({
    collect() {
      throw new PluginError('upstream said 503');
    },
  });
  p.init();
  assert.throws(() => p.collect(), (e) => e.message === 'upstream said 503' && !(e instanceof Error));
  assert.deepEqual(host.logs, []);
});

test('a failing constructor fails init, and the previous instance is gone', () => {
  setup({ config: { ok: true } });
  const p = collector(
    class {
      constructor(config) {
        if (!config.ok) throw new PluginError('[config] ok must be true');
      }
      collect() {
        return [];
      }
    },
  );
  p.init();
  assert.deepEqual(p.collect(), []);
  setup({ config: { ok: false } });
  assert.throws(() => p.init(), { message: '[config] ok must be true' });
  assert.throws(() => p.collect(), { message: 'collect was called before init' });
});

test('onMessage gets headers as an object, a Number time and text()/json()', () => {
  setup();
  const p = collector({
    collect: () => [],
    onMessage(m) {
      assert.equal(typeof m.receivedMs, 'number');
      assert.deepEqual(m.headers, { type: 'job' });
      return [sample('job_size', m.json().size, { queue: m.source })];
    },
  });
  p.init();
  const out = p.onMessage(message({ source: 'jobs', headers: { type: 'job' }, body: { size: 7 }, receivedMs: 1234 }));
  assert.deepEqual(out[0].labels, [{ name: 'queue', value: 'jobs' }]);
  assert.equal(out[0].value, 7);
});

test('a collector without onMessage says so when a message comes', () => {
  setup();
  const p = collector({ collect: () => [] });
  p.init();
  assert.throws(() => p.onMessage(message()), { message: 'the plugin has no onMessage() method' });
});

test('a rule receives Numbers and label objects, and its alerts are checked', () => {
  setup();
  let seen;
  const p = rule({
    evaluate(input) {
      seen = input;
      return input.samples.map((s) => alert('hot', s.value > 1 ? 'critical' : 'ok', `v=${s.value}`, s.labels, s.value));
    },
  });
  p.init();
  const alerts = p.evaluate(
    ruleInput({
      nowMs: 1000,
      samples: [{ name: 'temp', value: 2, labels: { room: 'a' }, timestampMs: 900 }],
      services: [{ name: 'api', up: false, lastSeenMs: 10 }],
      events: [{ eventType: 'service.down', service: 'api', timeMs: 20, attributes: { zone: 'x' } }],
    }),
  );
  assert.equal(seen.nowMs, 1000);
  assert.deepEqual(seen.samples[0].labels, { room: 'a' });
  assert.equal(seen.samples[0].timestampMs, 900);
  assert.equal(seen.services[0].lastSeenMs, 10);
  assert.equal(seen.events[0].timeMs, 20);
  assert.deepEqual(seen.events[0].attributes, { zone: 'x' });
  assert.deepEqual(alerts, [{ name: 'hot', labels: [{ name: 'room', value: 'a' }], severity: 'critical', summary: 'v=2', value: 2 }]);

  const bad = rule({ evaluate: () => [{ name: 'x', severity: 'fatal', summary: '' }] });
  bad.init();
  assert.throws(() => bad.evaluate(ruleInput()), { message: /severity must be one of ok, warning, critical, got "fatal"/ });
});

test("a sink's throws become retryable or permanent delivery errors", () => {
  setup();
  let got;
  const failWith = { current: undefined };
  const p = sink({
    deliver(events) {
      got = events;
      if (failWith.current) throw failWith.current;
    },
  });
  p.init();
  p.deliver([event({ alert: { name: 'disk', state: 'resolved', activeSinceMs: 5 }, timeMs: 9 })]);
  assert.equal(got[0].eventType, 'alert.resolved');
  assert.equal(got[0].timeMs, 9);
  assert.equal(got[0].alert.activeSinceMs, 5);
  assert.deepEqual(got[0].alert.labels, {});

  const outcome = (error) => {
    failWith.current = error;
    try {
      p.deliver([event()]);
    } catch (e) {
      return [e.tag, e.val];
    }
    return undefined;
  };
  assert.deepEqual(outcome(new PluginError('webhook said 502')), ['retryable', 'webhook said 502']);
  assert.deepEqual(outcome(new PermanentError('payload rejected')), ['permanent', 'payload rejected']);
  assert.deepEqual(outcome(new CapabilityError('transport', 'refused', 'http')), ['retryable', 'http transport: refused']);
  assert.deepEqual(outcome(new CapabilityError('not-granted', 'x.org', 'http')), ['permanent', 'http not-granted: x.org']);
  const [tag, val] = outcome(new RangeError('bad index'));
  assert.equal(tag, 'retryable');
  assert.match(val, /^RangeError: bad index at /);
});
