// The management API client and the login session (HTTP basic auth, kept in
// sessionStorage).

class ApiError extends Error {
  constructor(status, reason) { super(reason); this.status = status; }
}
export const session = {
  get auth() { return sessionStorage.getItem('warren.auth'); },
  get user() { return sessionStorage.getItem('warren.user') || ''; },
  get tags() { try { return JSON.parse(sessionStorage.getItem('warren.tags') || '[]'); } catch (e) { return []; } },
};
export function basic(user, pass) {
  const bytesOf = new TextEncoder().encode(`${user}:${pass}`);
  let bin = '';
  bytesOf.forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin);
}
// What to do when the server stops taking the session's login: the page shell
// (main.js) logs out.
let loginLost = () => {};
export function onLoginLost(fn) { loginLost = fn; }

export async function api(method, path, body, opts = {}) {
  const auth = opts.auth || session.auth;
  const headers = Object.assign({ Authorization: `Basic ${auth}`, Accept: 'application/json' }, opts.headers || {});
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  // credentials: 'omit' keeps the browser's own login prompt away on a 401.
  const r = await fetch(path, {
    method, headers, credentials: 'omit', cache: 'no-store',
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!r.ok) {
    const reason = (data && typeof data === 'object' && (data.reason || data.error)) || `HTTP ${r.status} ${r.statusText}`;
    if (r.status === 401 && !opts.auth && /login failed/i.test(reason)) loginLost('Your login is no longer valid: log in again.');
    throw new ApiError(r.status, reason);
  }
  return data;
}
export function listQuery(st) {
  const p = new URLSearchParams({ page: String(st.page), page_size: String(st.page_size) });
  if (st.name) p.set('name', st.name);
  if (st.name && st.regex) p.set('use_regex', 'true');
  if (st.sort) p.set('sort', st.sort);
  if (st.sort && st.rev) p.set('sort_reverse', 'true');
  return p.toString();
}
let vhostCache = null;
export async function vhostNames() {
  if (!vhostCache) vhostCache = (await api('GET', '/api/vhosts')).map((v) => v.name);
  return vhostCache;
}
/** Replace the cached vhost names (null: fetch them again when next asked). */
export function setVhostNames(names) { vhostCache = names; }
