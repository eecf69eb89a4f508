// The host's REST API: JSON in and out, `{"detail"}` errors, and the admin
// token (kept in sessionStorage, sent as a Bearer header).

const TOKEN_KEY = "wasmon.adminToken";

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token lives as long as the page
  }
}

/** An HTTP answer that is not 2xx: `status` and the host's `detail`. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** `GET`/`POST` a path of this host; resolves to the parsed JSON body. */
export async function call(path, { method = "GET", admin = false } = {}) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (admin && t) headers.Authorization = `Bearer ${t}`;
  let response;
  try {
    response = await fetch(path, { method, headers, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, `the host did not answer (${error.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail);
  }
  return body;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
