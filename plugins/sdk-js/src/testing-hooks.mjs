// Node module-loader hooks for unit tests (registered by `testing.mjs`):
// each `wasmon:plugin/NAME@0.2.0` import resolves to a small module whose
// functions forward to the in-memory host that `testing.mjs` keeps on
// `globalThis`. These hooks run on Node's loader thread; the modules they
// produce run on the main thread, beside the test.

const INTERFACES = {
  types: [],
  host: ['log', 'pluginName', 'configJson', 'configGet', 'stateGet', 'stateSet', 'stateDelete', 'stateKeys'],
  http: ['send'],
  redis: ['command'],
  sql: ['query'],
  rabbitmq: ['publish'],
  storage: ['health', 'buckets', 'bucketStats', 'head'],
};

const VERSION = '0.2.0';

export async function resolve(specifier, context, nextResolve) {
  if (!specifier.startsWith('wasmon:')) return nextResolve(specifier, context);
  const m = /^wasmon:plugin\/([a-z-]+)@([0-9.]+)$/.exec(specifier);
  if (!m || m[2] !== VERSION || !(m[1] in INTERFACES)) {
    throw new Error(
      `cannot import '${specifier}' in a test: the wasmon SDK's test loader provides ` +
        Object.keys(INTERFACES)
          .map((i) => `wasmon:plugin/${i}@${VERSION}`)
          .join(', '),
    );
  }
  const iface = m[1];
  const source = [
    `const stub = () => globalThis[Symbol.for('wasmon.testing')].${iface};`,
    ...INTERFACES[iface].map((fn) => `export function ${fn}(...args) { return stub().${fn}(...args); }`),
  ].join('\n');
  return { url: `data:text/javascript,${encodeURIComponent(source)}`, shortCircuit: true };
}
