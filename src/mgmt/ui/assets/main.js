// Warren's management page: a client of the management HTTP API on the same
// origin. Everything shown is put in the DOM as text (textContent, never
// HTML), so names such as "<script>" display as typed. No inline handlers, no
// eval: the page's Content-Security-Policy allows only this origin's scripts,
// this module and the ones it imports (native ES modules, no build step).
//
// This file is the page shell: the routes, login and logout, and rendering
// the current page with its refresh timer. dom.js and format.js hold the
// helpers, api.js the API client and session, widgets.js the page building
// blocks, charts.js the charts; each page group has a file of its own.

import { $, REFRESH_MS, h, flash } from './dom.js';
import { session, basic, api, onLoginLost, setVhostNames } from './api.js';
import { history } from './charts.js';
import { overviewPage } from './overview.js';
import { queuesPage, queuePage } from './queues.js';
import { exchangesPage, exchangePage } from './exchanges.js';
import { connectionsPage, channelsPage, connectionPage } from './connections.js';
import { adminPage } from './admin.js';

const routes = [
  [/^\/?$/, 'overview', overviewPage],
  [/^\/queues$/, 'queues', queuesPage],
  [/^\/queues\/([^/]*)\/([^/]*)$/, 'queues', queuePage],
  [/^\/exchanges$/, 'exchanges', exchangesPage],
  [/^\/exchanges\/([^/]*)\/([^/]*)$/, 'exchanges', exchangePage],
  [/^\/connections$/, 'connections', connectionsPage],
  [/^\/connections\/([^/]+)$/, 'connections', connectionPage],
  [/^\/channels$/, 'channels', channelsPage],
  [/^\/admin(?:\/([\w-]+))?$/, 'admin', adminPage],
];
let timer = null;
let generation = 0;

function showLogin(message) {
  clearInterval(timer);
  history.length = 0; // the next user's charts start afresh
  $('nav').hidden = true;
  $('who').hidden = true;
  $('page').replaceChildren();
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  document.title = 'Log in - Warren';
  $('login-user').focus();
}

export function logout(message) {
  sessionStorage.removeItem('warren.auth');
  sessionStorage.removeItem('warren.user');
  sessionStorage.removeItem('warren.tags');
  setVhostNames(null);
  showLogin(message);
}

async function render(moveFocus) {
  clearInterval(timer);
  timer = null;
  const gen = ++generation;
  if (!session.auth) { showLogin(); return; }
  $('login').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who-name').textContent = `${session.user} (${session.tags.join(', ') || 'no tags'})`;
  const t = session.tags;
  $('nav-admin').parentElement.hidden = !(t.includes('administrator') || t.includes('policymaker'));
  const path = (location.hash || '#/').slice(1);
  let found = null;
  for (const [re, name, fn] of routes) {
    const m = re.exec(path);
    if (m) { found = [name, fn, m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)))]; break; }
  }
  const page = h('div', { id: 'page' });
  $('page').replaceWith(page);
  document.querySelectorAll('#nav a').forEach((a) => {
    if (found && a.dataset.page === found[0]) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  if (!found) {
    page.append(h('h1', { tabindex: -1 }, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
    return;
  }
  let refresh = null;
  try {
    refresh = await found[1](page, ...found[2]);
  } catch (e) {
    if (gen !== generation) return;
    if (!page.querySelector('h1')) page.append(h('h1', { tabindex: -1 }, 'Error'));
    page.append(h('p', { class: 'error', role: 'alert' }, e.message));
  }
  if (gen !== generation) return;
  if (moveFocus) {
    const h1 = page.querySelector('h1');
    if (h1) h1.focus();
  }
  if (refresh) {
    // Not while the tab is hidden, a confirmation is open, or the keyboard
    // focus sits in what a refresh would redraw (it would be lost).
    const busy = () => page.querySelector('.confirm')
      || (document.activeElement && document.activeElement.closest('.table-wrap, .pager'));
    timer = setInterval(() => {
      if (document.hidden || busy()) return;
      refresh().catch((e) => flash(e.message, true));
    }, REFRESH_MS);
  }
}

async function login(ev) {
  ev.preventDefault();
  const user = $('login-user').value, pass = $('login-pass').value;
  const err = $('login-error');
  err.textContent = '';
  $('login-submit').disabled = true;
  try {
    const auth = basic(user, pass);
    const me = await api('GET', '/api/whoami', undefined, { auth });
    sessionStorage.setItem('warren.auth', auth);
    sessionStorage.setItem('warren.user', me.name);
    sessionStorage.setItem('warren.tags', JSON.stringify(Array.isArray(me.tags) ? me.tags : String(me.tags || '').split(',').filter(Boolean)));
    $('login-pass').value = '';
    await render(true);
  } catch (e) {
    if (e.status === 401 && /not management/i.test(e.message)) {
      err.textContent = `Refused: ${user} has no management tag (the management API refuses it).`;
    } else if (e.status === 401) {
      err.textContent = 'Login failed: wrong username or password.';
    } else {
      err.textContent = `Login failed: ${e.message}`;
    }
  } finally {
    $('login-submit').disabled = false;
  }
}

onLoginLost(logout);

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => logout('You are logged out.'));
  // The skip link moves the focus; as a plain #main link it would change the route.
  document.querySelector('.skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    const h1 = document.querySelector('#page h1');
    (h1 || $('main')).focus();
  });
  window.addEventListener('hashchange', () => render(true));
  render(false);
});
