// Sportello dashboard: signs in if needed, follows /api/v1/dashboard/ws and draws the figures.
// Snapshots are the truth; deltas update the counters at once until the next snapshot, which
// the server sends within a second of any change. Protocol: docs/DASHBOARD.md.
(function () {
  'use strict';

  var S = JSON.parse(document.getElementById('strings').textContent);
  var LANG = document.documentElement.lang === 'en' ? 'en-GB' : 'it-IT';
  var SVG = 'http://www.w3.org/2000/svg';
  var state = { snap: null, seq: 0, ws: null, retry: 0, timer: null, recent: [], lastLive: '' };

  function $(id) { return document.getElementById(id); }
  function t(key) { return Object.prototype.hasOwnProperty.call(S, key) ? S[key] : key; }
  function label(prefix, slug) { return slug ? (S[prefix + slug] || slug) : t('none'); }
  function fmtInt(n) { return typeof n === 'number' ? n.toLocaleString(LANG) : '–'; }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function setText(id, text) {
    var e = $(id);
    if (!e) { return; }
    text = String(text);
    if (e.textContent !== text) {
      e.textContent = text;
      e.classList.remove('flash');
      // Restart the highlight so a changed number catches the eye.
      void e.offsetWidth;
      e.classList.add('flash');
    }
  }
  function duration(secs) {
    if (typeof secs !== 'number' || !isFinite(secs)) { return '–'; }
    var neg = secs < 0;
    var s = Math.abs(Math.round(secs));
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var r = s % 60;
    var out;
    if (h > 0) { out = h + ' h ' + (m < 10 ? '0' : '') + m + ' min'; }
    else if (m > 0) { out = m + ' min ' + (r < 10 ? '0' : '') + r + ' s'; }
    else { out = r + ' s'; }
    return neg ? '−' + out : out;
  }
  function clock(iso) {
    if (!iso) { return '–'; }
    var opts = { hour: '2-digit', minute: '2-digit' };
    if (state.snap && state.snap.timezone) { opts.timeZone = state.snap.timezone; }
    try { return new Intl.DateTimeFormat(LANG, opts).format(new Date(iso)); }
    catch (e) { return new Date(iso).toLocaleTimeString(LANG); }
  }
  function pct(x) { return typeof x === 'number' ? Math.round(x * 100) + '%' : t('no_data'); }

  // ---- connection status and sign-in ----

  function status(kind) {
    var c = $('conn');
    c.className = 'conn' + (kind === 'live' ? ' live' : kind === 'offline' ? ' down' : '');
    c.textContent = t(kind);
  }

  function showSignin() {
    $('board').hidden = true;
    $('signout').hidden = true;
    $('signin').hidden = false;
    $('conn').textContent = '';
    $('username').focus();
  }

  function showBoard() {
    $('signin').hidden = true;
    $('board').hidden = false;
    $('signout').hidden = false;
    connect();
  }

  function signedIn() {
    return fetch('/api/v1/auth/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok; })
      .catch(function () { return null; });
  }

  $('signin-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    $('signin-error').textContent = '';
    fetch('/api/v1/auth/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ username: $('username').value.trim(), password: $('password').value })
    }).then(function (r) {
      if (r.ok) {
        $('password').value = '';
        showBoard();
        $('main').focus();
      } else {
        $('signin-error').textContent = t('signin_failed');
      }
    }).catch(function () { $('signin-error').textContent = t('offline'); });
  });

  $('signout').addEventListener('click', function () {
    fetch('/api/v1/auth/logout', { method: 'POST', credentials: 'same-origin' })
      .catch(function () { return null; })
      .then(function () {
        if (state.ws) { state.ws.onclose = null; state.ws.close(1000); state.ws = null; }
        showSignin();
      });
  });

  // ---- websocket ----

  function connect() {
    if (state.ws) { return; }
    clearTimeout(state.timer);
    status('connecting');
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws = new WebSocket(proto + '//' + location.host + '/api/v1/dashboard/ws');
    state.ws = ws;
    ws.onopen = function () { state.retry = 0; status('live'); };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      onMessage(msg);
    };
    ws.onclose = function (ev) {
      state.ws = null;
      if (ev.code === 4401) { showSignin(); return; }
      status('offline');
      // The handshake fails without a word when the session ended: ask before retrying.
      signedIn().then(function (ok) {
        if (ok === false) { showSignin(); return; }
        var delay = Math.min(30000, 1000 * Math.pow(2, state.retry++));
        state.timer = setTimeout(connect, delay);
      });
    };
  }

  function resync() {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: 'resync' }));
    }
  }

  function onMessage(msg) {
    if (msg.type === 'snapshot') {
      state.seq = msg.seq;
      state.snap = msg;
      render();
    } else if (msg.type === 'delta') {
      if (msg.seq !== state.seq + 1) { state.seq = msg.seq; resync(); return; }
      state.seq = msg.seq;
      applyDelta(msg);
    } else if (msg.type === 'heartbeat') {
      if (msg.seq !== state.seq) { resync(); }
    }
  }

  // ---- deltas: immediate hints until the next snapshot ----

  function applyDelta(d) {
    state.recent.unshift(d);
    state.recent.length = Math.min(state.recent.length, 12);
    var s = state.snap;
    if (s) {
      if (d.event === 'ticket_created') {
        s.totals.waiting += 1;
        s.totals.active += 1;
        s.totals.arrivals_today += 1;
        var row = s.queues.filter(function (q) {
          return q.channel === d.channel && q.tier === d.tier && (q.category || null) === (d.category || null);
        })[0];
        if (!row) {
          row = { channel: d.channel, tier: d.tier, category: d.category || null, waiting: 0, assigned: 0, open: 0,
            waiting_citizen: 0, waiting_internal: 0, oldest_waiting_since: d.at, arrivals_today: 0, resolved_today: 0,
            at_risk: 0, breached: 0 };
          s.queues.push(row);
        }
        row.waiting += 1;
        row.arrivals_today += 1;
        if (!row.oldest_waiting_since) { row.oldest_waiting_since = d.at; }
        if (!s.totals.oldest_waiting_since) { s.totals.oldest_waiting_since = d.at; }
        var now = Date.now();
        s.hourly.forEach(function (h, i) {
          var start = Date.parse(h.start);
          var next = i + 1 < s.hourly.length ? Date.parse(s.hourly[i + 1].start) : Infinity;
          if (now >= start && now < next) { h.arrivals += 1; }
        });
      } else if (d.event === 'ticket_transitioned' && d.status === 'resolved') {
        s.totals.resolved_today += 1;
      }
      render();
    } else {
      renderRecent();
    }
  }

  // ---- drawing ----

  function render() {
    var s = state.snap;
    if (!s) { return; }
    var tot = s.totals;
    setText('t-waiting', fmtInt(tot.waiting));
    setText('t-assigned', fmtInt(tot.assigned));
    setText('t-open', fmtInt(tot.open));
    setText('t-waiting-citizen', fmtInt(tot.waiting_citizen));
    setText('t-arrivals', fmtInt(tot.arrivals_today));
    setText('t-resolved', fmtInt(tot.resolved_today));
    setText('t-at-risk', fmtInt(tot.at_risk));
    setText('t-breached', fmtInt(tot.breached));
    setText('p-pending', fmtInt(s.phone.callbacks_pending));
    setText('p-overdue', fmtInt(s.phone.callbacks_overdue));
    renderQueues(s);
    renderCategories(s);
    renderHourly(s);
    renderSla(s);
    renderAlerts('risk-body', s.at_risk, 'no_at_risk', 'warn');
    renderAlerts('breached-body', s.breached, 'no_breached', 'bad');
    renderOperators(s);
    renderCounter(s);
    renderRecent();
    tick();
    $('updated').textContent = t('updated') + ' ' + new Date(s.generated_at).toLocaleTimeString(LANG);
    var live = t('waiting') + ': ' + fmtInt(tot.waiting) + '. ' + t('at_risk') + ': ' + fmtInt(tot.at_risk) +
      '. ' + t('breached') + ': ' + fmtInt(tot.breached) + '.';
    // Announced politely, and only when it says something new.
    if (live !== state.lastLive) { state.lastLive = live; $('live-summary').textContent = live; }
  }

  function emptyRow(body, cols, key) {
    var tr = el('tr');
    var td = el('td', t(key), 'empty');
    td.colSpan = cols;
    tr.appendChild(td);
    body.appendChild(tr);
  }

  function cells(tr, values) {
    values.forEach(function (v, i) {
      var td = el(i === 0 ? 'th' : 'td', v[0], v[1] || '');
      if (i === 0) { td.scope = 'row'; }
      if (v[2]) { Object.keys(v[2]).forEach(function (k) { td.dataset[k] = v[2][k]; }); }
      tr.appendChild(td);
    });
  }

  function renderQueues(s) {
    var body = $('queues-body');
    body.textContent = '';
    var groups = {};
    s.queues.forEach(function (q) {
      var k = q.channel + '|' + q.tier;
      var g = groups[k] || (groups[k] = { channel: q.channel, tier: q.tier, waiting: 0, oldest: null, assigned: 0, open: 0,
        waiting_citizen: 0, arrivals_today: 0, resolved_today: 0, at_risk: 0, breached: 0 });
      ['waiting', 'assigned', 'open', 'waiting_citizen', 'arrivals_today', 'resolved_today', 'at_risk', 'breached']
        .forEach(function (f) { g[f] += q[f] || 0; });
      if (q.waiting > 0 && q.oldest_waiting_since && (!g.oldest || q.oldest_waiting_since < g.oldest)) {
        g.oldest = q.oldest_waiting_since;
      }
    });
    var list = Object.keys(groups).sort().map(function (k) { return groups[k]; });
    if (!list.length) { emptyRow(body, 11, 'no_queue'); return; }
    list.forEach(function (g) {
      var tr = el('tr');
      if (g.breached > 0) { tr.className = 'bad'; } else if (g.at_risk > 0) { tr.className = 'warn'; }
      cells(tr, [
        [label('ch_', g.channel)], [label('tier_', g.tier)], [fmtInt(g.waiting), 'num'],
        [g.oldest ? '' : '–', 'num', g.oldest ? { since: g.oldest } : null],
        [fmtInt(g.assigned), 'num'], [fmtInt(g.open), 'num'], [fmtInt(g.waiting_citizen), 'num'],
        [fmtInt(g.arrivals_today), 'num'], [fmtInt(g.resolved_today), 'num'], [fmtInt(g.at_risk), 'num'],
        [fmtInt(g.breached), 'num']
      ]);
      body.appendChild(tr);
    });
  }

  function renderCategories(s) {
    var body = $('categories-body');
    body.textContent = '';
    var groups = {};
    s.queues.forEach(function (q) {
      var k = q.category || '';
      var g = groups[k] || (groups[k] = { category: q.category, waiting: 0, assigned: 0, arrivals_today: 0, resolved_today: 0 });
      g.waiting += q.waiting; g.assigned += q.assigned; g.arrivals_today += q.arrivals_today; g.resolved_today += q.resolved_today;
    });
    var keys = Object.keys(groups).sort();
    if (!keys.length) { emptyRow(body, 5, 'no_queue'); return; }
    keys.forEach(function (k) {
      var g = groups[k];
      var tr = el('tr');
      cells(tr, [[g.category || t('none')], [fmtInt(g.waiting), 'num'], [fmtInt(g.assigned), 'num'],
        [fmtInt(g.arrivals_today), 'num'], [fmtInt(g.resolved_today), 'num']]);
      body.appendChild(tr);
    });
  }

  function renderHourly(s) {
    var box = $('chart-hourly');
    var hours = s.hourly || [];
    var W = 640, H = 240, padL = 34, padB = 26, padT = 10;
    var max = 1;
    hours.forEach(function (h) { max = Math.max(max, h.arrivals, h.resolutions); });
    var step = Math.max(1, Math.ceil(max / 4));
    var top = step * 4;
    var chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': t('chart_arrivals_label') + ': ' +
      hours.filter(function (h) { return h.arrivals || h.resolutions; }).map(function (h) {
        return h.hour + ':00 ' + t('arrivals') + ' ' + h.arrivals + ', ' + t('resolutions') + ' ' + h.resolutions;
      }).join('; ') });
    var plotW = W - padL - 6, plotH = H - padB - padT;
    for (var g = 0; g <= 4; g++) {
      var y = padT + plotH - (plotH * g) / 4;
      chart.appendChild(svg('line', { x1: padL, x2: W - 6, y1: y, y2: y, stroke: '#c9ced4', 'stroke-width': 1 }));
      var lbl = svg('text', { x: padL - 4, y: y + 4, 'text-anchor': 'end' });
      lbl.textContent = String(step * g);
      chart.appendChild(lbl);
    }
    var slot = plotW / Math.max(1, hours.length);
    var bw = Math.max(2, slot * 0.38);
    hours.forEach(function (h, i) {
      var x = padL + i * slot + slot * 0.1;
      var ha = (plotH * h.arrivals) / top;
      var hr = (plotH * h.resolutions) / top;
      chart.appendChild(svg('rect', { x: x, y: padT + plotH - ha, width: bw, height: ha, fill: '#1f5fa8' }));
      chart.appendChild(svg('rect', { x: x + bw, y: padT + plotH - hr, width: bw, height: hr, fill: '#2e7d32' }));
      if (i % 3 === 0) {
        var tx = svg('text', { x: x + bw, y: H - 6, 'text-anchor': 'middle' });
        tx.textContent = (h.hour < 10 ? '0' : '') + h.hour;
        chart.appendChild(tx);
      }
    });
    box.textContent = '';
    box.appendChild(chart);
  }

  function renderSla(s) {
    var today = s.sla.today, week = s.sla.last_7_days;
    var rows = [
      ['first_response_within', pct(today.first_response_attainment), pct(week.first_response_attainment)],
      ['resolution_within', pct(today.resolution_attainment), pct(week.resolution_attainment)],
      ['first_response_p50', duration(today.first_response_p50_secs), duration(week.first_response_p50_secs)],
      ['first_response_p90', duration(today.first_response_p90_secs), duration(week.first_response_p90_secs)],
      ['resolution_p50', duration(today.resolution_p50_secs), duration(week.resolution_p50_secs)],
      ['resolution_p90', duration(today.resolution_p90_secs), duration(week.resolution_p90_secs)]
    ];
    var body = $('sla-body');
    body.textContent = '';
    rows.forEach(function (r) {
      var tr = el('tr');
      cells(tr, [[t(r[0])], [r[1], 'num'], [r[2], 'num']]);
      body.appendChild(tr);
    });
    // Attainment bars: a picture of the first two rows.
    var bars = [
      [t('first_response_within') + ', ' + t('today'), today.first_response_attainment],
      [t('first_response_within') + ', ' + t('last_7_days'), week.first_response_attainment],
      [t('resolution_within') + ', ' + t('today'), today.resolution_attainment],
      [t('resolution_within') + ', ' + t('last_7_days'), week.resolution_attainment]
    ];
    var W = 640, rowH = 34, H = bars.length * rowH + 6, padL = 300;
    var chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': t('chart_sla_label') + ': ' +
      bars.map(function (b) { return b[0] + ' ' + pct(b[1]); }).join('; ') });
    bars.forEach(function (b, i) {
      var y = 4 + i * rowH;
      var name = svg('text', { x: 0, y: y + 19 });
      name.textContent = b[0];
      chart.appendChild(name);
      var full = W - padL - 110;
      chart.appendChild(svg('rect', { x: padL, y: y + 4, width: full, height: 20, fill: '#e4e7eb' }));
      var v = typeof b[1] === 'number' ? Math.max(0, Math.min(1, b[1])) : 0;
      var color = v >= 0.9 ? '#2e7d32' : v >= 0.75 ? '#8a5a00' : '#b00020';
      chart.appendChild(svg('rect', { x: padL, y: y + 4, width: full * v, height: 20, fill: color }));
      var val = svg('text', { x: padL + full + 8, y: y + 19 });
      val.textContent = pct(b[1]);
      chart.appendChild(val);
    });
    var box = $('chart-sla');
    box.textContent = '';
    box.appendChild(chart);
  }

  function renderAlerts(id, items, emptyKey, cls) {
    var body = $(id);
    body.textContent = '';
    if (!items || !items.length) { emptyRow(body, 7, emptyKey); return; }
    items.forEach(function (a) {
      var tr = el('tr', null, cls);
      cells(tr, [[a.number], [label('ch_', a.channel)], [label('tier_', a.tier)], [a.category || t('none')],
        [label('st_', a.status)], [clock(a.due)], ['', 'num countdown', a.due ? { due: a.due } : null]]);
      body.appendChild(tr);
    });
  }

  function renderOperators(s) {
    var chips = $('presence');
    chips.textContent = '';
    ['available', 'busy', 'wrap_up', 'break', 'offline'].forEach(function (p) {
      chips.appendChild(el('li', label('pr_', p) + ': ' + fmtInt(s.operators.by_presence[p] || 0)));
    });
    var body = $('operators-body');
    body.textContent = '';
    if (!s.operators.items.length) { emptyRow(body, 4, 'no_operators'); return; }
    s.operators.items.forEach(function (o) {
      var load = Object.keys(o.capacity || {}).filter(function (c) { return (o.capacity[c] || 0) > 0; }).map(function (c) {
        return label('ch_', c) + ' ' + ((o.load && o.load[c]) || 0) + '/' + o.capacity[c];
      }).join(', ');
      var tr = el('tr');
      cells(tr, [[o.name], [label('pr_', o.presence)], [o.on_shift ? t('yes') : t('no')], [load || '–']]);
      body.appendChild(tr);
    });
  }

  function renderCounter(s) {
    var box = $('counter-figures');
    box.textContent = '';
    if (!s.counter) { box.appendChild(el('p', t('counter_unavailable'), 'note')); return; }
    var dl = el('dl', null, 'tiles small');
    [['visitors_waiting', s.counter.visitors_waiting], ['desks_open', s.counter.desks_open], ['no_shows', s.counter.no_shows_today]]
      .forEach(function (f) {
        var d = el('div', null, 'tile');
        d.appendChild(el('dt', t(f[0])));
        d.appendChild(el('dd', fmtInt(f[1])));
        dl.appendChild(d);
      });
    box.appendChild(dl);
  }

  function renderRecent() {
    var list = $('recent');
    list.textContent = '';
    state.recent.forEach(function (d) {
      var parts = [clock(d.at), d.number || '', t('ev_' + d.event)];
      if (d.status) { parts.push('→ ' + label('st_', d.status)); }
      if (d.sla_state) { parts.push(d.sla_state); }
      if (d.channel) { parts.push('(' + label('ch_', d.channel) + (d.tier ? ', ' + label('tier_', d.tier) : '') + ')'); }
      list.appendChild(el('li', parts.filter(Boolean).join(' ')));
    });
  }

  // Live countdowns and waiting ages, every second, without waiting for the server.
  function tick() {
    var now = Date.now();
    Array.prototype.forEach.call(document.querySelectorAll('[data-due]'), function (td) {
      var left = (Date.parse(td.dataset.due) - now) / 1000;
      var text = duration(Math.abs(left));
      if (td.textContent !== text) { td.textContent = text; }
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-since]'), function (td) {
      var text = duration((now - Date.parse(td.dataset.since)) / 1000);
      if (td.textContent !== text) { td.textContent = text; }
    });
    var s = state.snap;
    if (s) {
      var since = s.totals.oldest_waiting_since;
      var text = since && s.totals.waiting > 0 ? duration((now - Date.parse(since)) / 1000) : '–';
      var o = $('t-oldest');
      if (o.textContent !== text) { o.textContent = text; }
    }
  }
  setInterval(tick, 1000);

  signedIn().then(function (ok) { if (ok) { showBoard(); } else { showSignin(); } });
})();
