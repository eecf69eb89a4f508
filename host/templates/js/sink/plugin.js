// {{name}}: a wasmon sink in JavaScript.
//
// The host calls deliver() with batches of events: alert changes
// (`alert.firing`, `alert.resolved`, ...), service transitions
// (`service.down`, `service.up`) and ingested events (`POST /events`), from
// this sink's cursor in the event log. Returning acknowledges the batch; a
// throw makes the host retry it later with backoff, except a PermanentError
// (the batch is then dead-lettered). Here: each event becomes a log line, and
// a running total is kept in the plugin's state. To forward events, grant
// [capabilities.http] and `http.post(url, events)`.

import { sink, log, state, PluginError } from './sdk/wasmon.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

class Sink {
  constructor(config) {
    this.level = config.level ?? 'info';
    if (!LEVELS.includes(this.level)) throw new PluginError(`[config] level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(this.level)}`);
    this.maxLines = Number(config.max_lines ?? 10);
    this.delivered = state.getJson('delivered', 0);
  }

  deliver(events) {
    if (events.length === 0) return; // the manifest's `tick`: nothing new
    for (const e of events.slice(0, this.maxLines)) log[this.level](describe(e));
    if (events.length > this.maxLines) log[this.level](`... and ${events.length - this.maxLines} more events`);
    this.delivered += events.length;
    state.setJson('delivered', this.delivered);
  }
}

// One line per event: `alert.firing disk_full (critical): disk at 97%`.
export function describe(e) {
  if (e.alert) return `${e.eventType} ${e.alert.name} (${e.alert.severity}): ${e.alert.summary}`;
  const who = e.service ?? e.source;
  return `${e.eventType} ${who} (${e.severity})${e.detail ? `: ${e.detail}` : ''}`;
}

export const { init, deliver } = sink(Sink);
