// Unit test of plugin.js under plain Node: `npm test` (node --test).
// sdk/testing.mjs stands in for the host: config, state, logs, capabilities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, loadPlugin } from './sdk/testing.mjs';

// After testing.mjs (it maps the plugin's `wasmon:plugin/*` imports to the test host).
const plugin = await loadPlugin(new URL('./plugin.js', import.meta.url));
const prefix = '{{name}}'.toLowerCase();

test('collect reports up and counts collections across restarts', () => {
  const host = setup({ config: { labels: { team: 'ops' } } });
  plugin.init();
  const first = plugin.collect();
  assert.deepEqual(
    first.map((s) => [s.name, s.kind, s.value]),
    [
      [`${prefix}_up`, 'gauge', 1],
      [`${prefix}_collections`, 'counter', 1],
    ],
  );
  assert.deepEqual(first[0].labels, [{ name: 'team', value: 'ops' }]);
  assert.ok(first.every((s) => s.help));

  plugin.init(); // a restart: a new instance, the same state
  assert.equal(plugin.collect()[1].value, 2);
  assert.match(host.logs[1].message, /1 collections so far/);
});

test('a bad [config] fails init with a message naming the key', () => {
  setup({ config: { labels: 'ops' } });
  assert.throws(() => plugin.init(), { message: /\[config\] labels must be a table/ });
});
