// {{name}}: a wasmon rule in JavaScript.
//
// Every `interval` (see {{name}}.toml) the host calls evaluate() with the
// latest value of each series its manifest selects, the services known from
// heartbeats and recent events. It returns one alert per checked condition;
// the host runs pending -> firing -> resolved (with the manifest's `for`),
// and an alert returned with severity `ok`, or no longer returned, resolves.
// Here: a warning and a critical threshold on one metric from [config].

import { rule, alert, log, PluginError } from './sdk/wasmon.js';

const PREFIX = '{{name}}'.toLowerCase();

class Rule {
  constructor(config) {
    const { metric, warning, critical, absent = true } = config;
    if (typeof metric !== 'string' || metric === '') throw new PluginError('[config] metric must name a metric, e.g. metric = "wasmon_memory_usage_ratio"');
    for (const [key, v] of [['warning', warning], ['critical', critical]]) {
      if (typeof v !== 'number') throw new PluginError(`[config] ${key} must be a number, got ${JSON.stringify(v)}`);
    }
    if (warning > critical) throw new PluginError(`[config] warning (${warning}) must not be above critical (${critical})`);
    this.metric = metric;
    this.warning = warning;
    this.critical = critical;
    this.absent = Boolean(absent);
    log.info(`watching ${metric}: warning at ${warning}, critical at ${critical}`);
  }

  evaluate({ samples }) {
    const alerts = [];
    for (const s of samples) {
      if (s.name !== this.metric) continue;
      const severity = s.value >= this.critical ? 'critical' : s.value >= this.warning ? 'warning' : 'ok';
      const summary = `${this.metric} is ${round(s.value)} (warning at ${this.warning}, critical at ${this.critical})`;
      alerts.push(alert(`${PREFIX}_threshold`, severity, summary, s.labels, s.value));
    }
    if (this.absent) {
      const severity = alerts.length === 0 ? 'warning' : 'ok';
      alerts.push(alert(`${PREFIX}_absent`, severity, `no ${this.metric} series: check the manifest's select and the collector`, { metric: this.metric }));
    }
    return alerts;
  }
}

const round = (v) => Math.round(v * 1000) / 1000;

export const { init, evaluate } = rule(Rule);
