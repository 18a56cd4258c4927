// The admin pages: users, virtual hosts, permissions, policies, limits and
// definitions.

import { enc, h, add, field, input, select, flash } from './dom.js';
import { num, yesNo, compactJson, parseJsonObject } from './format.js';
import { session, api, vhostNames, setVhostNames } from './api.js';
import { confirmButton, form, submit, table, tags } from './widgets.js';

const adminTabs = [
  ['users', 'Users'], ['vhosts', 'Virtual hosts'], ['permissions', 'Permissions'], ['policies', 'Policies'],
  ['operator-policies', 'Operator policies'], ['limits', 'Limits'], ['definitions', 'Definitions'],
];
export async function adminPage(page, tab) {
  tab = tab || 'users';
  const label = (adminTabs.find((t) => t[0] === tab) || adminTabs[0])[1];
  document.title = `Admin: ${label} - Warren`;
  add(page, [
    h('h1', { tabindex: -1 }, `Admin: ${label}`),
    h('nav', { class: 'subnav', 'aria-label': 'Admin' }, h('ul', {}, adminTabs.map(([k, l]) => h('li', {},
      h('a', { href: `#/admin/${k}`, 'aria-current': k === tab ? 'page' : null }, l))))),
  ]);
  const box = h('div', {});
  page.append(box);
  const fn = { users: adminUsers, vhosts: adminVhosts, permissions: adminPermissions, policies: (b) => adminPolicies(b, 'policies'),
    'operator-policies': (b) => adminPolicies(b, 'operator-policies'), limits: adminLimits, definitions: adminDefinitions }[tab];
  if (!fn) throw new Error(`No admin page ${tab}.`);
  await fn(box);
  return null;
}

async function adminUsers(box) {
  const list = h('div', {});
  box.append(list);
  async function load() {
    const users = await api('GET', '/api/users');
    list.replaceChildren(table([
      { label: 'Name', name: true, cell: (u) => u.name },
      { label: 'Tags', cell: (u) => tags(u.tags) },
      { label: 'Has password', cell: (u) => yesNo(!!u.password_hash) },
      { label: 'Action', cell: (u) => (u.name === session.user ? h('span', { class: 'muted' }, 'you') : confirmButton('Delete', `Delete user ${u.name}?`, async () => {
        await api('DELETE', `/api/users/${enc(u.name)}`);
        flash(`User ${u.name} deleted.`);
        await load();
      })) },
    ], users, { id: 'users-table' }));
  }
  await load();
  box.append(h('h2', {}, 'Add or update a user'));
  const name = input({ required: true, autocomplete: 'off' }), pass = input({ type: 'password', autocomplete: 'new-password' });
  const tagsIn = input({ list: 'tag-list', placeholder: 'management, monitoring' });
  box.append(h('datalist', { id: 'tag-list' }, ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'].map((t) => h('option', { value: t }))));
  box.append(form({ id: 'add-user', 'aria-label': 'Add or update a user' }, [
    field('Username', name), field('Password', pass, { hint: 'Leave empty for a user without a password (it cannot log in with one).' }),
    field('Tags (comma-separated)', tagsIn, { hint: 'administrator, monitoring, policymaker, management' }), submit('Save user'),
  ], async () => {
    if (!name.value) throw new Error('A user needs a name.');
    const body = { tags: tagsIn.value.split(',').map((t) => t.trim()).filter(Boolean).join(',') };
    if (pass.value) body.password = pass.value; else body.password_hash = '';
    await api('PUT', `/api/users/${enc(name.value)}`, body);
    flash(`User ${name.value} saved.`);
    name.value = ''; pass.value = '';
    await load();
  }));
}

async function adminVhosts(box) {
  const list = h('div', {});
  box.append(list);
  async function load() {
    const vhosts = await api('GET', '/api/vhosts');
    setVhostNames(vhosts.map((v) => v.name));
    list.replaceChildren(table([
      { label: 'Name', name: true, cell: (v) => v.name },
      { label: 'Description', cell: (v) => v.description },
      { label: 'Tags', cell: (v) => tags(v.tags) },
      { label: 'Default queue type', cell: (v) => v.default_queue_type },
      { label: 'Messages', num: true, cell: (v) => num(v.messages) },
      { label: 'Action', cell: (v) => confirmButton('Delete', `Delete vhost ${v.name} and everything in it?`, async () => {
        await api('DELETE', `/api/vhosts/${enc(v.name)}`);
        flash(`Virtual host ${v.name} deleted.`);
        await load();
      }) },
    ], vhosts, { id: 'vhosts-table' }));
  }
  await load();
  box.append(h('h2', {}, 'Add a virtual host'));
  const name = input({ required: true }), desc = input({}), vtags = input({});
  box.append(form({ id: 'add-vhost', 'aria-label': 'Add a virtual host' }, [
    field('Name', name), field('Description', desc), field('Tags (comma-separated)', vtags), submit('Add virtual host'),
  ], async () => {
    if (!name.value) throw new Error('A virtual host needs a name.');
    await api('PUT', `/api/vhosts/${enc(name.value)}`, { description: desc.value, tags: vtags.value });
    flash(`Virtual host ${name.value} added.`);
    name.value = '';
    await load();
  }));
}

async function adminPermissions(box) {
  const list = h('div', {});
  box.append(list);
  async function load() {
    const perms = await api('GET', '/api/permissions');
    list.replaceChildren(table([
      { label: 'User', cell: (p) => p.user }, { label: 'Virtual host', cell: (p) => p.vhost },
      { label: 'Configure', cell: (p) => h('code', {}, p.configure) }, { label: 'Write', cell: (p) => h('code', {}, p.write) },
      { label: 'Read', cell: (p) => h('code', {}, p.read) },
      { label: 'Action', cell: (p) => confirmButton('Clear', `Clear ${p.user}'s permissions on ${p.vhost}?`, async () => {
        await api('DELETE', `/api/permissions/${enc(p.vhost)}/${enc(p.user)}`);
        flash('Permissions cleared.');
        await load();
      }) },
    ], perms, { id: 'permissions-table' }));
  }
  await load();
  box.append(h('h2', {}, 'Set permissions'));
  const users = (await api('GET', '/api/users')).map((u) => u.name);
  const vhosts = await vhostNames();
  const user = select(users), vh = select(vhosts);
  const conf = input({ value: '.*' }), write = input({ value: '.*' }), read = input({ value: '.*' });
  box.append(form({ id: 'set-permission', 'aria-label': 'Set permissions' }, [
    field('User', user), field('Virtual host', vh), field('Configure regexp', conf), field('Write regexp', write), field('Read regexp', read),
    submit('Set permissions'),
  ], async () => {
    await api('PUT', `/api/permissions/${enc(vh.value)}/${enc(user.value)}`, { configure: conf.value, write: write.value, read: read.value });
    flash('Permissions set.');
    await load();
  }));
}

async function adminPolicies(box, kind) {
  const list = h('div', {});
  box.append(list);
  async function load() {
    const ps = await api('GET', `/api/${kind}`);
    list.replaceChildren(table([
      { label: 'Virtual host', cell: (p) => p.vhost }, { label: 'Name', name: true, cell: (p) => p.name },
      { label: 'Pattern', cell: (p) => h('code', {}, p.pattern) }, { label: 'Apply to', cell: (p) => p['apply-to'] },
      { label: 'Definition', cell: (p) => h('code', {}, compactJson(p.definition)) }, { label: 'Priority', num: true, cell: (p) => num(p.priority) },
      { label: 'Action', cell: (p) => confirmButton('Delete', `Delete policy ${p.name}?`, async () => {
        await api('DELETE', `/api/${kind}/${enc(p.vhost)}/${enc(p.name)}`);
        flash(`Policy ${p.name} deleted.`);
        await load();
      }) },
    ], ps, { id: `${kind}-table`, empty: 'No policies.' }));
  }
  await load();
  box.append(h('h2', {}, kind === 'policies' ? 'Add or update a policy' : 'Add or update an operator policy'));
  const vh = select(await vhostNames()), name = input({ required: true }), pattern = input({ value: '.*' });
  const applyTo = select(['queues', 'exchanges', 'all', 'classic_queues', 'quorum_queues', 'streams']);
  const priority = input({ type: 'number', value: '0' });
  const def = h('textarea', { rows: 3, placeholder: '{"max-length": 10000, "dead-letter-exchange": "dlx"}' });
  box.append(form({ id: `add-${kind}`, 'aria-label': 'Add a policy' }, [
    field('Virtual host', vh), field('Name', name), field('Pattern (regexp)', pattern), field('Apply to', applyTo),
    field('Priority', priority), field('Definition (JSON object)', def, { wide: true }), submit('Save policy'),
  ], async () => {
    if (!name.value) throw new Error('A policy needs a name.');
    await api('PUT', `/api/${kind}/${enc(vh.value)}/${enc(name.value)}`, {
      pattern: pattern.value, 'apply-to': applyTo.value, priority: Number(priority.value) || 0,
      definition: parseJsonObject(def.value, 'Definition'),
    });
    flash(`Policy ${name.value} saved.`);
    await load();
  }));
}

async function adminLimits(box) {
  const vlist = h('div', {}), ulist = h('div', {});
  add(box, [h('h2', {}, 'Virtual host limits'), vlist]);
  const flat = (rows, who) => rows.flatMap((r) => Object.entries(r.value || {}).map(([k, v]) => ({ who: r[who], name: k, value: v })));
  async function load() {
    const vl = flat(await api('GET', '/api/vhost-limits'), 'vhost');
    vlist.replaceChildren(table([
      { label: 'Virtual host', cell: (l) => l.who }, { label: 'Limit', cell: (l) => l.name }, { label: 'Value', num: true, cell: (l) => num(l.value) },
      { label: 'Action', cell: (l) => confirmButton('Clear', `Clear ${l.name} on ${l.who}?`, async () => {
        await api('DELETE', `/api/vhost-limits/${enc(l.who)}/${enc(l.name)}`);
        flash('Limit cleared.');
        await load();
      }) },
    ], vl, { id: 'vhost-limits-table', empty: 'No virtual host limits.' }));
    const ul = flat(await api('GET', '/api/user-limits'), 'user');
    ulist.replaceChildren(table([
      { label: 'User', cell: (l) => l.who }, { label: 'Limit', cell: (l) => l.name }, { label: 'Value', num: true, cell: (l) => num(l.value) },
      { label: 'Action', cell: (l) => confirmButton('Clear', `Clear ${l.name} of ${l.who}?`, async () => {
        await api('DELETE', `/api/user-limits/${enc(l.who)}/${enc(l.name)}`);
        flash('Limit cleared.');
        await load();
      }) },
    ], ul, { id: 'user-limits-table', empty: 'No user limits.' }));
  }
  const vh = select(await vhostNames()), vname = select(['max-connections', 'max-queues']), vvalue = input({ type: 'number', value: '100' });
  box.append(form({ id: 'set-vhost-limit', 'aria-label': 'Set a virtual host limit' }, [
    field('Virtual host', vh), field('Limit', vname), field('Value', vvalue, { hint: '-1 removes the bound' }), submit('Set limit'),
  ], async () => {
    await api('PUT', `/api/vhost-limits/${enc(vh.value)}/${enc(vname.value)}`, { value: Number(vvalue.value) });
    flash('Limit set.');
    await load();
  }));
  add(box, [h('h2', {}, 'User limits'), ulist]);
  const users = (await api('GET', '/api/users')).map((u) => u.name);
  const user = select(users), uname = select(['max-connections', 'max-channels']), uvalue = input({ type: 'number', value: '100' });
  box.append(form({ id: 'set-user-limit', 'aria-label': 'Set a user limit' }, [
    field('User', user), field('Limit', uname), field('Value', uvalue), submit('Set limit'),
  ], async () => {
    await api('PUT', `/api/user-limits/${enc(user.value)}/${enc(uname.value)}`, { value: Number(uvalue.value) });
    flash('Limit set.');
    await load();
  }));
  await load();
}

async function adminDefinitions(box) {
  const vhosts = await vhostNames();
  box.append(h('h2', {}, 'Export'));
  const evh = select([['', 'All virtual hosts'], ...vhosts.map((v) => [v, v])]);
  box.append(form({ id: 'export-definitions', 'aria-label': 'Export definitions' }, [
    field('Virtual host', evh), submit('Download definitions'),
  ], async () => {
    const defs = await api('GET', evh.value ? `/api/definitions/${enc(evh.value)}` : '/api/definitions');
    const blob = new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `warren-definitions${evh.value ? `-${evh.value.replace(/[^\w.-]/g, '_')}` : ''}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    flash('Definitions downloaded.');
  }));
  box.append(h('h2', {}, 'Import'));
  const file = h('input', { type: 'file', accept: 'application/json,.json', 'data-test': 'definitions-file' });
  const ivh = select([['', 'All virtual hosts (as in the file)'], ...vhosts.map((v) => [v, v])]);
  box.append(form({ id: 'import-definitions', 'aria-label': 'Import definitions' }, [
    field('Definitions file (RabbitMQ JSON)', file), field('Into virtual host', ivh), submit('Upload definitions'),
  ], async () => {
    const f = file.files && file.files[0];
    if (!f) throw new Error('Choose a definitions file first.');
    const text = await f.text();
    try { JSON.parse(text); } catch (e) { throw new Error(`The file is not JSON: ${e.message}`); }
    await api('POST', ivh.value ? `/api/definitions/${enc(ivh.value)}` : '/api/definitions', text);
    setVhostNames(null);
    flash('Definitions imported.');
  }));
}
