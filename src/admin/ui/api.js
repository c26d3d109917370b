// The admin API as the console sees it: GET with the tab's token, JSON back, and one
// error type that says what went wrong and what to do.

const KEY = 'pgsidecar.admin_token';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** GET /api/<path> with `params` (empty values left out); resolves to the JSON body. */
export async function api(path, params = {}, signal = undefined) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') query.set(k, v);
  }
  const url = `/api/${path}${query.size ? '?' + query : ''}`;
  const headers = {};
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  let response;
  try {
    response = await fetch(url, { headers, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'cannot reach the proxy\u2019s admin server: is pgsidecar running? Retrying when you reload.');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, `the admin server answered ${response.status} without JSON`);
  }
  if (!response.ok) {
    throw new ApiError(response.status, body && body.error ? body.error : `HTTP ${response.status}`);
  }
  return body;
}

/** Follows `next_cursor` until `max` rows (or the end). */
export async function apiAll(path, params = {}, max = 300, signal = undefined) {
  const rows = [];
  let cursor = null;
  do {
    const page = await api(path, { ...params, limit: 100, cursor }, signal);
    rows.push(...page.data);
    cursor = page.has_more ? page.next_cursor : null;
  } while (cursor && rows.length < max);
  return { rows, more: cursor !== null };
}
