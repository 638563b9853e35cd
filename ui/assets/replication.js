// Coffer's replication status page (package ui, /ui/replication).
//
// Every 2 s it reads the two status endpoints of the origin that served it
// (no token: Coffer serves them without one) and redraws both panels from
// what they say. Nothing is stored: the lag charts hold the samples taken
// since the page loaded, the last 5 minutes of them. Text from the server
// goes into the DOM as text (textContent), never as markup.
'use strict';

(function () {
  const PERIOD_MS = 2000;
  const WINDOW_MS = 5 * 60 * 1000;
  const MIN_SPAN_MS = 60 * 1000;
  const KINDS = ['performance', 'dr'];
  const ENDPOINTS = {
    performance: '../v1/sys/replication/performance/status',
    dr: '../v1/sys/replication/dr/status',
  };
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const samples = { performance: [], dr: [] };
  let refreshes = 0;
  // serverNow: the time of the last status answer by the server's clock (its
  // Date header), so that "s ago" does not depend on this browser's clock.
  let serverNow = null;

  // ---- small helpers -------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    }
  }

  // num reads a number the API gave as a number or a numeric string.
  function num(v) {
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
    return null;
  }

  function show(v) {
    if (v === null || v === undefined || v === '') return 'n/a';
    return String(v);
  }

  function fmtSeconds(v) {
    if (v === null) return 'n/a';
    return v < 10 ? v.toFixed(3) : v.toFixed(1);
  }

  function fmtTime(iso) {
    const t = Date.parse(iso);
    if (!iso || Number.isNaN(t)) return 'n/a';
    const age = Math.max(0, Math.round(((serverNow !== null ? serverNow : Date.now()) - t) / 1000));
    return new Date(t).toISOString().slice(11, 19) + 'Z (' + age + ' s ago)';
  }

  // ---- lag -------------------------------------------------------------------

  // lagSeconds: a lag in seconds the status states (lag_seconds, or in
  // milliseconds), else the difference of two commit times that both come
  // from the primary's clock; null when the status has neither.
  function lagSeconds(o, primaryCommit) {
    for (const k of ['lag_seconds', 'replication_lag_seconds']) {
      const v = num(o[k]);
      if (v !== null) return v;
    }
    for (const k of ['lag_ms', 'lag_milliseconds', 'replication_lag_ms']) {
      const v = num(o[k]);
      if (v !== null) return v / 1000;
    }
    const a = Date.parse(primaryCommit || ''), b = Date.parse(o.last_remote_commit_time || '');
    if (!Number.isNaN(a) && !Number.isNaN(b)) return Math.max(0, (a - b) / 1000);
    return null;
  }

  function primaryCommitTime(o) {
    return o.last_wal_commit_time || o.last_commit_time || o.last_wal_time || '';
  }

  // On a primary: its last_wal minus what each secondary applied.
  function secondaryLag(st, s) {
    let entries = num(s.lag_entries);
    const last = num(st.last_wal), remote = num(s.last_remote_wal);
    if (entries === null && last !== null && remote !== null) entries = Math.max(0, last - remote);
    return { entries: entries, seconds: lagSeconds(s, primaryCommitTime(st)) };
  }

  // On a secondary: from its own fields (the primary's last WAL as its
  // heartbeats report it, when the status carries it).
  function ownLag(st) {
    const p = (st.primaries && st.primaries[0]) || {};
    let entries = num(st.lag_entries);
    const last = num(st.primary_last_wal !== undefined ? st.primary_last_wal : p.last_wal);
    const remote = num(st.last_remote_wal);
    if (entries === null && last !== null && remote !== null) entries = Math.max(0, last - remote);
    return { entries: entries, seconds: lagSeconds(st, primaryCommitTime(st) || primaryCommitTime(p)) };
  }

  // lags returns the series of this sample: one per secondary on a
  // primary, this cluster's own on a secondary.
  function lags(st) {
    const out = [];
    if (st.mode === 'primary') {
      for (const s of st.secondaries || []) out.push({ series: s.node_id, ...secondaryLag(st, s) });
    } else if (st.mode === 'secondary' && st.state !== 'demoted') {
      out.push({ series: st.secondary_id || 'this cluster', ...ownLag(st) });
    }
    return out;
  }

  function record(kind, st, now) {
    const list = samples[kind];
    list.push({ t: now, lags: lags(st) });
    while (list.length > 0 && list[0].t < now - WINDOW_MS) list.shift();
  }

  // ---- rendering -------------------------------------------------------------

  function item(role, label, value, extra) {
    return el('div', { class: 'item' }, el('dt', null, label), el('dd', { 'data-role': role, ...extra }, show(value)));
  }

  function summary(st, own) {
    const dl = el('dl', { class: 'summary', 'data-role': 'summary' });
    dl.append(item('mode', 'Mode', st.mode), item('state', 'State', st.state));
    if (st.generation !== undefined) dl.append(item('generation', 'Generation', st.generation));
    dl.append(item('cluster-id', st.local_cluster_id ? 'Set (primary) cluster id' : 'Cluster id', st.cluster_id));
    if (st.local_cluster_id) dl.append(item('local-cluster-id', 'Local cluster id', st.local_cluster_id));
    if (st.mode === 'primary') {
      dl.append(item('last-wal', 'Last WAL', st.last_wal), item('last-shipped-wal', 'Last shipped WAL', st.last_shipped_wal));
    }
    if (st.mode === 'secondary') {
      dl.append(item('secondary-id', 'Secondary id', st.secondary_id),
        item('connection-state', 'Connection state', st.connection_state),
        item('last-remote-wal', 'Last remote WAL', st.last_remote_wal),
        item('lag-entries', 'Lag (entries)', own.entries, { 'data-value': own.entries }),
        item('lag-seconds', 'Lag (seconds)', fmtSeconds(own.seconds), { 'data-value': own.seconds }));
      if (st.last_remote_commit_time) dl.append(item('last-remote-commit-time', 'Last applied commit', fmtTime(st.last_remote_commit_time)));
    }
    if (st.bootstrap && st.bootstrap.phase) dl.append(item('bootstrap', 'Activation', st.bootstrap.phase));
    return dl;
  }

  const COLUMNS = [
    ['role', 'Role'], ['id', 'Cluster'], ['address', 'API address'], ['state', 'State'],
    ['connection_status', 'Connection'], ['last_heartbeat', 'Last heartbeat'],
    ['last_remote_wal', 'Last remote WAL'], ['lag_entries', 'Lag (entries)'], ['lag_seconds', 'Lag (s)'],
  ];

  function row(attrs, values) {
    const tr = el('tr', attrs);
    for (const [field] of COLUMNS) {
      const v = values[field];
      const text = field in values ? show(v && v.text !== undefined ? v.text : v) : '—';
      const cell = el('td', { 'data-field': field }, text);
      if (v && v.value !== undefined) cell.setAttribute('data-value', v.value === null ? '' : String(v.value));
      tr.append(cell);
    }
    return tr;
  }

  function topology(st, own) {
    const head = el('tr', null, ...COLUMNS.map(([, label]) => el('th', { scope: 'col' }, label)));
    const body = el('tbody');
    if (st.mode === 'primary') {
      body.append(row({ 'data-role': 'self' }, {
        role: 'primary (this cluster)', id: st.cluster_id, address: location.host, state: st.state,
        last_remote_wal: st.last_wal,
      }));
      for (const s of st.secondaries || []) {
        const lag = secondaryLag(st, s);
        body.append(row({ 'data-secondary': s.node_id, 'data-state': s.state, 'data-connection': s.connection_status }, {
          role: 'secondary', id: s.node_id, address: s.api_address, state: s.state,
          connection_status: s.connection_status, last_heartbeat: fmtTime(s.last_heartbeat),
          last_remote_wal: s.last_remote_wal,
          lag_entries: { text: lag.entries, value: lag.entries },
          lag_seconds: { text: fmtSeconds(lag.seconds), value: lag.seconds },
        }));
      }
      if ((st.secondaries || []).length === 0) {
        body.append(el('tr', { 'data-role': 'no-secondaries' }, el('td', { colspan: COLUMNS.length }, 'no secondary is activated yet')));
      }
    } else {
      for (const p of st.primaries || []) {
        body.append(row({ 'data-primary': p.api_address || '', 'data-connection': p.connection_status }, {
          role: 'primary', id: st.local_cluster_id ? st.cluster_id : '', address: p.api_address,
          connection_status: p.connection_status, last_heartbeat: fmtTime(p.last_heartbeat),
        }));
      }
      body.append(row({ 'data-role': 'self', 'data-secondary': st.secondary_id || '', 'data-state': st.state, 'data-connection': st.connection_state }, {
        role: 'secondary (this cluster)', id: st.secondary_id, address: location.host, state: st.state,
        connection_status: st.connection_state, last_remote_wal: st.last_remote_wal,
        lag_entries: { text: own.entries, value: own.entries },
        lag_seconds: { text: fmtSeconds(own.seconds), value: own.seconds },
      }));
    }
    return el('table', { class: 'topology', 'data-role': 'topology' }, el('thead', null, head), body);
  }

  function syncProgress(st) {
    const p = st.merkle_sync_progress;
    if (!p) {
      if (st.last_sync_keys === undefined) return null;
      return el('p', { class: 'sync', 'data-role': 'sync-progress', 'data-done': st.last_sync_keys },
        'No sync running; the last one wrote or deleted ' + st.last_sync_keys + ' keys.');
    }
    const done = num(p.sync_progress) || 0, total = num(p.sync_total_keys) || 0;
    const bar = el('progress', total > 0 ? { max: total, value: Math.min(done, total) } : {});
    return el('p', { class: 'sync', 'data-role': 'sync-progress', 'data-done': done, 'data-total': total },
      'Sync: ', bar, ' ' + done + (total > 0 ? ' of ' + total : '') + ' keys');
  }

  const ERROR_FIELDS = [
    ['last_error', null], ['ship_error', 'ship_error_since'], ['claim_error', null],
    ['fenced_reason', null], ['claim_reason', null], ['last_wal_stream_repair', 'last_wal_stream_repair_time'],
  ];

  function errors(st) {
    const ul = el('ul', { class: 'errors', 'data-role': 'errors' });
    for (const [field, since] of ERROR_FIELDS) {
      if (!st[field]) continue;
      ul.append(el('li', { 'data-error': field }, el('code', null, field), ': ' + st[field] +
        (since && st[since] ? ' (since ' + st[since] + ')' : '')));
    }
    for (const s of st.secondaries || []) {
      if (s.last_error) ul.append(el('li', { 'data-error': 'last_error', 'data-secondary': s.node_id }, s.node_id + ': ' + s.last_error));
    }
    ul.setAttribute('data-errors', String(ul.children.length));
    if (ul.children.length === 0) ul.append(el('li', { class: 'none' }, 'no error reported'));
    return el('div', { class: 'errors-box' }, el('h3', null, 'Last errors'), ul);
  }

  // ---- chart -----------------------------------------------------------------

  function chart(kind, unit, title) {
    const W = 560, H = 170, L = 48, R = 10, T = 10, B = 24;
    const list = samples[kind];
    const now = list.length ? list[list.length - 1].t : Date.now();
    const start = list.length ? Math.min(list[0].t, now - MIN_SPAN_MS) : now - MIN_SPAN_MS;
    const span = Math.max(now - start, 1);
    const series = new Map();
    let max = 0;
    for (const s of list) {
      for (const l of s.lags) {
        const v = unit === 'entries' ? l.entries : l.seconds;
        if (v === null) continue;
        if (!series.has(l.series)) series.set(l.series, []);
        series.get(l.series).push([s.t, v]);
        max = Math.max(max, v);
      }
    }
    const top = niceMax(max, unit);
    const x = (t) => L + ((t - start) / span) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const g = svg('svg', {
      class: 'chart', viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': title,
      'data-role': 'lag-chart', 'data-unit': unit, 'data-samples': list.length, 'data-max': max,
    });
    for (const v of [0, top / 2, top]) {
      g.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      g.append(svg('text', { class: 'axis', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, axisLabel(v, unit)));
    }
    g.append(svg('text', { class: 'axis', x: L, y: H - 6 }, '-' + Math.round(span / 1000) + ' s'));
    g.append(svg('text', { class: 'axis', x: W - R, y: H - 6, 'text-anchor': 'end' }, 'now'));
    let i = 0;
    const legend = el('ul', { class: 'legend' });
    for (const [name, pts] of series) {
      const cls = 'series series-' + (i % 6);
      const attrs = { class: cls, 'data-series': name, 'data-last': pts[pts.length - 1][1] };
      if (pts.length === 1) {
        g.append(svg('circle', { ...attrs, cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3 }));
      } else {
        g.append(svg('polyline', { ...attrs, fill: 'none', points: pts.map(([t, v]) => x(t).toFixed(1) + ',' + y(v).toFixed(1)).join(' ') }));
      }
      legend.append(el('li', null, el('span', { class: 'swatch swatch-' + (i % 6) }), name));
      i++;
    }
    if (series.size === 0) {
      g.append(svg('text', { class: 'axis nodata', x: W / 2, y: H / 2, 'text-anchor': 'middle' },
        unit === 'seconds' ? 'n/a: this status carries no lag in seconds' : 'no sample yet'));
    }
    return el('figure', { class: 'chart-box' }, el('figcaption', null, title), g, legend);
  }

  function niceMax(max, unit) {
    if (max <= 0) return unit === 'entries' ? 10 : 1;
    const p = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  }

  function axisLabel(v, unit) {
    return unit === 'entries' ? String(Math.round(v)) : (v < 1 ? v.toFixed(2) : v.toFixed(1)) + ' s';
  }

  // ---- refresh loop ----------------------------------------------------------

  function render(kind, st) {
    const section = document.getElementById(kind);
    section.setAttribute('data-mode', st.mode || '');
    section.setAttribute('data-state', st.state || '');
    section.removeAttribute('data-stale');
    const panel = section.querySelector('[data-role=panel]');
    const own = st.mode === 'secondary' ? ownLag(st) : { entries: null, seconds: null };
    const parts = [summary(st, own)];
    if (st.mode === 'primary' || st.mode === 'secondary') {
      parts.push(topology(st, own));
      const sync = syncProgress(st);
      if (sync) parts.push(sync);
      parts.push(el('div', { class: 'charts' },
        chart(kind, 'entries', 'Lag in entries, samples since this page loaded (last 5 min)'),
        chart(kind, 'seconds', 'Lag in seconds, samples since this page loaded (last 5 min)')));
      parts.push(errors(st));
    } else {
      parts.push(el('p', { class: 'empty' }, kind === 'dr'
        ? 'DR replication is not enabled on this cluster.'
        : 'Performance replication is not enabled on this cluster.'));
    }
    panel.replaceChildren(...parts);
  }

  async function fetchStatus(kind) {
    const r = await fetch(new URL(ENDPOINTS[kind], location.href), {
      cache: 'no-store', credentials: 'omit', headers: { Accept: 'application/json' },
    });
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      const why = body && Array.isArray(body.errors) ? ': ' + body.errors.join('; ') : '';
      throw new Error(kind + ' status: HTTP ' + r.status + why);
    }
    const date = Date.parse(r.headers.get('Date') || '');
    if (!Number.isNaN(date)) serverNow = date;
    return (body && body.data) || {};
  }

  async function refresh() {
    const now = Date.now();
    const results = await Promise.allSettled(KINDS.map(fetchStatus));
    const failed = [];
    KINDS.forEach((kind, i) => {
      const res = results[i];
      if (res.status === 'fulfilled') {
        record(kind, res.value, now);
        render(kind, res.value);
      } else {
        failed.push(String(res.reason && res.reason.message ? res.reason.message : res.reason));
        document.getElementById(kind).setAttribute('data-stale', 'true');
      }
    });
    refreshes++;
    const r = document.getElementById('refresh');
    r.setAttribute('data-refreshes', String(refreshes));
    const at = serverNow !== null ? serverNow : now; // the server's clock when it said
    r.textContent = 'updated ' + new Date(at).toISOString().slice(11, 19) + 'Z, every ' + PERIOD_MS / 1000 + ' s';
    const fe = document.getElementById('fetch-error');
    fe.hidden = failed.length === 0;
    fe.textContent = failed.length ? 'cannot read the status: ' + failed.join('; ') : '';
  }

  function loop() {
    refresh().catch((e) => {
      const fe = document.getElementById('fetch-error');
      fe.hidden = false;
      fe.textContent = 'cannot draw the status: ' + e;
    }).finally(() => setTimeout(loop, PERIOD_MS));
  }

  document.getElementById('origin').textContent = location.host;
  loop();
})();
