// Sportello operator console: keyboard shortcuts, live refresh of "my work", prepared answers in
// the reply form. The pages work without this script; it only saves keystrokes and reloads.
(function () {
  'use strict';

  var lang = document.documentElement.lang === 'en' ? 'en' : 'it';
  function t(it, en) { return lang === 'en' ? en : it; }

  function csrfToken() {
    var input = document.querySelector('input[name="csrf"]');
    return input ? input.value : '';
  }

  // ---- Keyboard shortcuts -------------------------------------------------------------------
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
  }

  function focusField(id) {
    var el = document.getElementById(id);
    if (!el) return false;
    el.focus();
    if (el.scrollIntoView) el.scrollIntoView({ block: 'center' });
    return true;
  }

  var rows = [];
  var current = -1;
  function collectRows() {
    rows = Array.prototype.slice.call(document.querySelectorAll('table.worklist a.ticket-link'));
  }
  function move(step) {
    collectRows();
    if (!rows.length) return;
    var active = rows.indexOf(document.activeElement);
    current = active >= 0 ? active + step : (step > 0 ? 0 : rows.length - 1);
    current = Math.max(0, Math.min(rows.length - 1, current));
    Array.prototype.forEach.call(document.querySelectorAll('table.worklist tr.selected'), function (tr) {
      tr.classList.remove('selected');
    });
    var link = rows[current];
    link.focus();
    var tr = link.closest('tr');
    if (tr) tr.classList.add('selected');
  }

  var pendingG = false;
  var gTimer = null;
  document.addEventListener('keydown', function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(e.target)) {
      if (e.key === 'Escape') e.target.blur();
      return;
    }
    var k = e.key;
    if (pendingG) {
      pendingG = false;
      clearTimeout(gTimer);
      var to = { w: '/', c: '/citizens', d: '/counter', k: '/knowledge' }[k];
      if (to) { e.preventDefault(); window.location.assign(to); }
      return;
    }
    if (k === 'g') {
      pendingG = true;
      gTimer = setTimeout(function () { pendingG = false; }, 1200);
      return;
    }
    if (k === '/') { if (focusField('quick-q')) e.preventDefault(); return; }
    if (k === 'r') { if (focusField('reply-body')) e.preventDefault(); return; }
    if (k === 'n') { if (focusField('note-body')) e.preventDefault(); return; }
    if (k === 'j') { e.preventDefault(); move(1); return; }
    if (k === 'k') { e.preventDefault(); move(-1); return; }
    if (k === '?') {
      var help = document.getElementById('shortcuts');
      if (help) {
        e.preventDefault();
        help.open = !help.open;
        if (help.open) help.querySelector('summary').focus();
      }
    }
  });

  // ---- Live refresh of "my work" -------------------------------------------------------------
  function startLive() {
    var region = document.getElementById('work-live');
    var status = document.getElementById('live-status');
    if (!region) return;
    var timer = null;
    var inFlight = false;

    var again = false;
    function refresh() {
      if (inFlight) {
        // A change arrived while fetching: fetch once more when this one is done.
        again = true;
        return;
      }
      // Never replace the lists while the operator is working inside them.
      if (region.contains(document.activeElement) && document.activeElement !== document.body) {
        schedule(3000);
        return;
      }
      inFlight = true;
      fetch('/work/live', { credentials: 'same-origin', headers: { Accept: 'text/html' } })
        .then(function (r) {
          if (r.redirected || r.status === 401) { window.location.assign('/login?expired=1'); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html === null || html === undefined) return;
          region.innerHTML = html;
          if (status) {
            var now = new Date();
            status.textContent = t('Aggiornato alle ', 'Updated at ') +
              String(now.getHours()).padStart(2, '0') + ':' + String(now.getMinutes()).padStart(2, '0');
          }
        })
        .catch(function () { /* offline for a moment: the next change or poll tries again */ })
        .then(function () {
          inFlight = false;
          if (again) {
            again = false;
            schedule(300);
          }
        });
    }

    function schedule(ms) {
      clearTimeout(timer);
      timer = setTimeout(refresh, ms);
    }

    var poll = setInterval(refresh, 60000);
    function connect(delay) {
      var ws;
      try {
        ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/dashboard/ws');
      } catch (err) {
        return;
      }
      var first = true;
      ws.onmessage = function (m) {
        var msg;
        try { msg = JSON.parse(m.data); } catch (err) { return; }
        if (msg.type === 'snapshot' && first) {
          // Connected: catch up with whatever changed between the page load and now.
          first = false;
          region.dataset.live = 'connected';
          schedule(100);
          delay = 1000;
        }
        if (msg.type === 'delta') schedule(700);
      };
      ws.onclose = function () {
        region.dataset.live = 'reconnecting';
        var next = Math.min((delay || 1000) * 2, 30000);
        setTimeout(function () { connect(next); }, next);
      };
      ws.onerror = function () { /* onclose follows and reconnects */ };
    }
    connect(1000);
    window.addEventListener('pagehide', function () { clearInterval(poll); });
  }

  // ---- Prepared answers in the reply form ---------------------------------------------------
  function startTemplates() {
    var select = document.getElementById('template');
    var body = document.getElementById('reply-body');
    var subject = document.getElementById('reply-subject');
    var language = document.getElementById('reply-lang');
    var status = document.getElementById('template-status');
    if (!select || !body || !select.dataset.renderUrl) return;
    select.addEventListener('change', function () {
      var id = select.value;
      if (!id) return;
      if (body.value.trim() && !window.confirm(t('Sostituire il testo già scritto con la risposta predefinita?',
        'Replace the text already written with the prepared answer?'))) {
        return;
      }
      if (status) status.textContent = t('Preparo la risposta…', 'Preparing the answer…');
      var url = select.dataset.renderUrl.replace('{id}', encodeURIComponent(id));
      fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrfToken() },
        body: JSON.stringify({ ticket_id: select.dataset.ticket })
      })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (a) {
          body.value = a.reply_body || a.body || '';
          // The server puts the ticket tag in front of the answer's subject when sending.
          if (subject && a.subject) subject.value = a.subject;
          if (a.lang && language) language.value = a.lang;
          var missing = (a.missing || []).join(', ');
          if (status) {
            status.textContent = missing
              ? t('Risposta inserita. Completa a mano: ', 'Answer inserted. Fill in by hand: ') + missing
              : t('Risposta predefinita inserita: puoi modificarla prima di inviare.',
                'Prepared answer inserted: you can edit it before sending.');
          }
          body.focus();
        })
        .catch(function () {
          if (status) status.textContent = t('Impossibile preparare la risposta predefinita.',
            'The prepared answer could not be prepared.');
        });
    });
  }

  function start() {
    if (document.body.dataset.page === 'work') startLive();
    startTemplates();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
