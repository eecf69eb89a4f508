// Unit test of plugin.js under plain Node: `npm test` (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, loadPlugin, event } from './sdk/testing.mjs';

const plugin = await loadPlugin(new URL('./plugin.js', import.meta.url));

test('each event is logged and the total survives restarts', () => {
  const host = setup({ config: { level: 'warn', max_lines: 1 } });
  plugin.init();
  plugin.deliver([
    event({ alert: { name: 'disk_full', severity: 'critical', summary: 'disk at 97%' } }),
    event({ eventType: 'service.down', service: 'api' }),
  ]);
  assert.deepEqual(host.logs, [
    { level: 'warn', message: 'alert.firing disk_full (critical): disk at 97%' },
    { level: 'warn', message: '... and 1 more events' },
  ]);
  plugin.init(); // a restart: a new instance, the same state
  plugin.deliver([event({ detail: 'model timeout', service: 'edge-cam01' })]);
  assert.equal(host.logs[2].message, 'error edge-cam01 (warning): model timeout');
  assert.equal(new TextDecoder().decode(host.state.get('delivered')), '3');
});

test('an unknown level fails init', () => {
  setup({ config: { level: 'loud' } });
  assert.throws(() => plugin.init(), { message: /\[config\] level must be one of/ });
});
