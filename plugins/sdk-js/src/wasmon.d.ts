// Types of the wasmon JavaScript SDK (wasmon.js), for editors and `tsc --checkJs`.
// Labels are plain objects; times and sizes are Numbers (milliseconds unless
// the name says otherwise).

export type Labels = Record<string, string | number | boolean> | Array<{ name: string; value: string }> | Array<[string, string]>;
export type Severity = 'ok' | 'warning' | 'critical';
export type Bytes = Uint8Array | string;

/** What collect() returns, as the host receives it (see `sample`). */
export interface Sample {
  name: string;
  kind: 'gauge' | 'counter';
  labels: Array<{ name: string; value: string }>;
  value: number;
  help?: string;
  timestampMs?: number;
}

/** What evaluate() returns (see `alert`). */
export interface Alert {
  name: string;
  labels: Array<{ name: string; value: string }>;
  severity: Severity;
  summary: string;
  value?: number;
}

/** A sample a rule receives: labels as an object. */
export interface InputSample {
  name: string;
  kind: 'gauge' | 'counter';
  labels: Record<string, string>;
  value: number;
  help?: string;
  timestampMs?: number;
}

export interface ServiceState {
  name: string;
  up: boolean;
  lastSeenMs: number;
  phase?: string;
}

export interface AlertChange {
  rule: string;
  name: string;
  labels: Record<string, string>;
  severity: Severity;
  state: 'pending' | 'firing' | 'resolved';
  summary: string;
  value?: number;
  activeSinceMs: number;
}

/** An event a sink (or a rule) receives. */
export interface Event {
  id: string;
  timeMs: number;
  /** e.g. `error`, `success`, `service.down`, `alert.firing`. */
  eventType: string;
  source: string;
  service?: string;
  component?: string;
  severity: Severity;
  detail?: string;
  attributes: Record<string, string>;
  alert?: AlertChange;
}

/** What evaluate() receives. */
export interface RuleInput {
  nowMs: number;
  samples: InputSample[];
  services: ServiceState[];
  events: Event[];
}

/** A message the host consumed for a collector. */
export interface Message {
  source: string;
  routingKey: string;
  headers: Record<string, string>;
  body: Uint8Array;
  receivedMs: number;
  text(): string;
  json(): unknown;
}

export type Config = Record<string, any>;

export interface CollectorPlugin {
  collect(): Sample[];
  onMessage?(message: Message): Sample[];
}
export interface RulePlugin {
  evaluate(input: RuleInput): Alert[];
}
export interface SinkPlugin {
  deliver(events: Event[]): void;
}

type Ctor<T> = new (config: Config) => T;
type Obj<T> = T & { init?(config: Config): void };

/** `export const { init, collect, onMessage } = collector(MyCollector);` */
export function collector(plugin: Ctor<CollectorPlugin> | Obj<CollectorPlugin>): {
  init(): void;
  collect(): Sample[];
  onMessage(message: unknown): Sample[];
};
/** `export const { init, evaluate } = rule(MyRule);` */
export function rule(plugin: Ctor<RulePlugin> | Obj<RulePlugin>): { init(): void; evaluate(input: unknown): Alert[] };
/** `export const { init, deliver } = sink(MySink);` */
export function sink(plugin: Ctor<SinkPlugin> | Obj<SinkPlugin>): { init(): void; deliver(batch: unknown[]): void };

/** An expected failure: its message is shown as it is. */
export class PluginError extends Error {}
/** A sink's failure retrying cannot fix: the batch is dead-lettered. */
export class PermanentError extends PluginError {}
/** A capability call refused or failed: kind is the WIT error case (`not-granted`, `timeout`, ...). */
export class CapabilityError extends PluginError {
  constructor(kind: string, detail?: string | number, capability?: string);
  kind: string;
  detail?: string | number;
  capability: string;
}

/** The one-line text a throw becomes in `last_error`. */
export function describe(error: unknown): string;

export function sample(
  name: string,
  value: number | bigint | boolean,
  labels?: Labels,
  options?: { counter?: boolean; help?: string; timestampMs?: number | Date },
): Sample;
export function alert(name: string, severity: Severity, summary: string, labels?: Labels, value?: number): Alert;
export function labelList(labels?: Labels | Map<string, unknown>): Array<{ name: string; value: string }>;
export function labelObject(list?: Array<{ name: string; value: string }>): Record<string, string>;
export function toBytes(value: unknown): Uint8Array;

type LogFn = (...parts: unknown[]) => void;
export const log: { trace: LogFn; debug: LogFn; info: LogFn; warn: LogFn; error: LogFn };
export function pluginName(): string;
/** The manifest's `[config]` over `defaults`. */
export function config<T extends Config = Config>(defaults?: Partial<T>): T;

export const state: {
  get(key: string): Uint8Array | undefined;
  set(key: string, value: Bytes | unknown): void;
  delete(key: string): void;
  keys(): string[];
  getString(key: string, fallback?: string): string | undefined;
  setString(key: string, value: string): void;
  getJson<T = unknown>(key: string, fallback?: T): T;
  setJson(key: string, value: unknown): void;
};

export class Response {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: Uint8Array;
  elapsedUs: number;
  readonly ok: boolean;
  text(): string;
  json(): any;
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS' | Lowercase<'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS'>;
interface RequestOptions {
  headers?: Labels;
  timeoutMs?: number;
}
export const http: {
  request(request: { method?: Method; url: string; headers?: Labels; body?: unknown; timeoutMs?: number }): Response;
  get(url: string, options?: RequestOptions): Response;
  head(url: string, options?: RequestOptions): Response;
  delete(url: string, options?: RequestOptions): Response;
  post(url: string, body?: unknown, options?: RequestOptions): Response;
  put(url: string, body?: unknown, options?: RequestOptions): Response;
  patch(url: string, body?: unknown, options?: RequestOptions): Response;
};

export type RedisValue = null | number | bigint | string | boolean | Uint8Array | RedisValue[] | { [key: string]: RedisValue };
export function decodeReply(reply: { nodes: unknown[] }): RedisValue;
export const redis: {
  command(name: string, ...args: Array<string | number | Uint8Array>): RedisValue;
  raw(name: string, ...args: Array<string | number | Uint8Array>): { nodes: unknown[] };
};

export type SqlValue = null | boolean | number | bigint | string | Uint8Array | Date;
export const sql: {
  query(name: string, ...params: Array<SqlValue | { tag: string; val?: unknown }>): {
    columns: string[];
    rows: SqlValue[][];
    records: Array<Record<string, SqlValue>>;
  };
  float(value: number): { tag: 'float'; val: number };
};

export const rabbitmq: {
  publish(exchange: string, routingKey: string, body: unknown, headers?: Labels): void;
};

export const storage: {
  health(): number;
  buckets(): Array<{ name: string; createdMs?: number }>;
  bucketStats(bucket: string, prefix?: string): { bucket: string; objects: number; bytes: number; truncated: boolean };
  head(bucket: string, key: string): { size: number; etag?: string; lastModifiedMs?: number; contentType?: string };
};
