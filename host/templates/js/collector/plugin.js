// {{name}}: a wasmon collector in JavaScript.
//
// Every `interval` (see {{name}}.toml) the host calls collect(), which returns
// samples: here, an `up` gauge and a count of collections that survives
// reloads and restarts because it is kept in the plugin's state.
// Grow it from here: read a status page with `http.get(url)` (grant the host
// in [capabilities.http]), query Redis with `redis.command(...)`, and so on:
// sdk/wasmon.d.ts lists what the SDK offers.

import { collector, sample, state, log, PluginError } from './sdk/wasmon.js';

// Sample names: lower-case snake case, base units (`_seconds`, `_bytes`).
const PREFIX = '{{name}}'.toLowerCase();

class Collector {
  // Runs in init(), once per instance; `config` is the manifest's [config].
  constructor(config) {
    this.labels = config.labels ?? {};
    if (typeof this.labels !== 'object' || Array.isArray(this.labels)) {
      throw new PluginError('[config] labels must be a table of strings, e.g. labels = { team = "ops" }');
    }
    this.collections = state.getJson('collections', 0);
    log.info(`started; ${this.collections} collections so far`);
  }

  collect() {
    this.collections += 1;
    state.setJson('collections', this.collections);
    return [
      sample(`${PREFIX}_up`, 1, this.labels, { help: 'Always 1 while the {{name}} collector runs.' }),
      sample(`${PREFIX}_collections`, this.collections, this.labels, {
        counter: true,
        help: 'collect() calls since the plugin was first installed.',
      }),
    ];
  }
}

export const { init, collect, onMessage } = collector(Collector);
