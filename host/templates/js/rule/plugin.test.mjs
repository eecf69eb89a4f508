// Unit test of plugin.js under plain Node: `npm test` (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, loadPlugin, ruleInput } from './sdk/testing.mjs';

const plugin = await loadPlugin(new URL('./plugin.js', import.meta.url));
const prefix = '{{name}}'.toLowerCase();
const config = { metric: 'disk_usage_ratio', warning: 0.8, critical: 0.9 };

test('one alert per series, with the severity its value reaches', () => {
  setup({ config });
  plugin.init();
  const alerts = plugin.evaluate(
    ruleInput({
      samples: [
        { name: 'disk_usage_ratio', value: 0.5, labels: { mount: '/' } },
        { name: 'disk_usage_ratio', value: 0.85, labels: { mount: '/var' } },
        { name: 'disk_usage_ratio', value: 0.95, labels: { mount: '/data' } },
        { name: 'other_metric', value: 99 },
      ],
    }),
  );
  assert.deepEqual(
    alerts.map((a) => [a.name, a.severity, a.labels[0].value]),
    [
      [`${prefix}_threshold`, 'ok', '/'],
      [`${prefix}_threshold`, 'warning', '/var'],
      [`${prefix}_threshold`, 'critical', '/data'],
      [`${prefix}_absent`, 'ok', 'disk_usage_ratio'],
    ],
  );
  assert.equal(alerts[2].value, 0.95);
});

test('a missing metric raises the absent alert', () => {
  setup({ config });
  plugin.init();
  const alerts = plugin.evaluate(ruleInput({ samples: [] }));
  assert.deepEqual(alerts.map((a) => [a.name, a.severity]), [[`${prefix}_absent`, 'warning']]);
});

test('thresholds in the wrong order fail init', () => {
  setup({ config: { ...config, warning: 0.95 } });
  assert.throws(() => plugin.init(), { message: /warning \(0.95\) must not be above critical/ });
});
