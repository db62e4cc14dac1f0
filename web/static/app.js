// adtrd operators' page: plain JS, no framework, no build step, nothing fetched from
// elsewhere. The server's Content-Security-Policy allows no inline script or style and
// no eval. Every text that comes from the daemon (frame names are file names from
// outside; error strings quote them) goes into the DOM through textContent only.
'use strict';

(function () {
  const TREND_WINDOW_MS = 5 * 60 * 1000; // the trend shows the last 5 minutes
  const TREND_MAX = 20000;               // points kept at most (5 min at 60 fps)
  const REJECTS_MAX = 50;                // entries in the rejects list
  const FAULTS_MAX = 100;                // entries in the faults list
  const TOKEN_KEY = 'adtrd.token';       // sessionStorage only: gone with the tab

  // ---- small DOM helpers (text only, never HTML) ----
  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function setText(id, text) {
    const e = $(id);
    if (e) e.textContent = text === undefined || text === null ? '–' : String(text);
  }
  function setState(node, text, state) {
    node.textContent = text;
    node.className = 'value state-' + state;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }
  function fmtScore(x) {
    return typeof x === 'number' && isFinite(x) ? x.toFixed(4) : '–';
  }
  function pad(n) { return n < 10 ? '0' + n : String(n); }
  function fmtTime(t) {
    const d = new Date(t);
    if (isNaN(d.getTime())) return '?';
    const now = new Date();
    const hms = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    if (d.toDateString() === now.toDateString()) return hms;
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + hms;
  }
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d > 0) return d + ' d ' + h + ' h';
    if (h > 0) return h + ' h ' + m + ' min';
    if (m > 0) return m + ' min ' + (s % 60) + ' s';
    return s + ' s';
  }

  // ---- state ----
  const st = {
    started: null,        // the daemon's start time: a change means a restart (ids restart)
    lastId: 0,            // the newest event id seen
    status: null,
    points: [],           // trend: {t (ms), score, threshold, decision}
    rejectEvents: [],     // recordings off: reject decisions, newest first
    recordingsOn: null,   // null until known
    recEls: new Map(),    // recording id -> its list entry (kept while it is listed)
    faults: [],           // newest first
    liveLoading: false,
    livePending: null,    // {seq, score} waiting for the current image to load
    liveShown: null,
    streamUp: false,
    trendScheduled: false,
    recTimer: null,
    mutations: undefined,
  };

  // ---- HTTP ----
  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store', credentials: 'same-origin' });
    if (!r.ok) throw new Error('HTTP ' + r.status + ' ' + url);
    return r.json();
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  // post sends an authorised POST and returns {ok, status, body}; the error line is
  // "HTTP 401: a valid bearer token is required" (the server's words).
  async function post(url, body) {
    const tok = token();
    if (!tok) return { ok: false, status: 0, line: 'no token: type the operator token in Controls first' };
    let r;
    try {
      r = await fetch(url, {
        method: 'POST', cache: 'no-store', credentials: 'same-origin',
        headers: { 'Authorization': 'Bearer ' + tok, 'Content-Type': 'application/json' },
        body: body === undefined ? '' : JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, line: 'not sent: ' + e.message };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) {
      const msg = data && typeof data.error === 'string' ? data.error : r.statusText;
      return { ok: false, status: r.status, data, line: 'HTTP ' + r.status + ': ' + msg };
    }
    return { ok: true, status: r.status, data, line: '' };
  }

  function showResult(node, res, okText) {
    node.textContent = res.ok ? okText : res.line;
    node.className = 'result ' + (res.ok ? 'ok' : 'bad');
  }

  // ---- status ----
  function applyStatus(s) {
    if (!s || typeof s !== 'object') return;
    if (st.started !== null && s.started !== st.started) {
      // The daemon restarted: its event ids start again from 1.
      st.lastId = 0;
      st.points = [];
      st.rejectEvents = [];
      st.faults = [];
      renderRejectEvents();
      renderFaults();
      backfill();
    }
    st.started = s.started;
    st.status = s;
    const now = new Date();
    setText('clock', pad(now.getHours()) + ':' + pad(now.getMinutes()) + ':' + pad(now.getSeconds()));

    setText('version', s.version ? 'v' + s.version : '');
    const cam = s.camera || {};
    const camNode = $('camera');
    if (cam.state === 'lost') setState(camNode, 'LOST', 'bad');
    else if (cam.state === 'up') setState(camNode, 'up', 'good');
    else setState(camNode, cam.state || '?', 'warn');
    document.body.classList.toggle('camera-lost', cam.state === 'lost');
    let camDetail = '';
    if (cam.state === 'lost' && cam.lost_since) camDetail = 'camera lost since ' + fmtTime(cam.lost_since);
    if (typeof cam.losses === 'number' && cam.losses > 0) camDetail += (camDetail ? ' · ' : '') + cam.losses + ' camera losses since start';
    setText('camera-detail', camDetail);

    const alarmNode = $('alarm');
    if (s.alarm) setState(alarmNode, 'ON', 'bad'); else setState(alarmNode, 'off', 'good');
    document.body.classList.toggle('alarm-on', !!s.alarm);
    const readyNode = $('ready');
    if (s.ready) setState(readyNode, 'yes', 'good'); else setState(readyNode, 'no', 'warn');
    const nr = $('not-ready');
    nr.hidden = !!s.ready || !s.not_ready;
    nr.textContent = s.not_ready ? 'not ready: ' + s.not_ready : '';

    setText('config', s.config);
    const m = s.model || {};
    setText('model-sha', m.sha256 ? String(m.sha256).slice(0, 12) : '–');
    $('model-sha').title = m.sha256 || '';
    setText('model-path', m.path || '');
    setText('engine', m.engine || '–');
    setText('placement', m.placement || '');
    setText('generation', s.generation);
    setText('threshold', fmtScore(s.threshold));
    setText('last-score', fmtScore(s.last_score));
    $('last-score').className = typeof s.last_score === 'number' && s.last_score >= s.threshold ? 'hot' : '';
    setText('uptime', typeof s.uptime_s === 'number' ? fmtDuration(s.uptime_s) : '–');

    const rl = s.reloads;
    const rerr = $('reload-error');
    if (rl) {
      setText('reload-state', rl.applied + ' applied · ' + rl.unchanged + ' unchanged · ' + rl.failed + ' failed');
      rerr.hidden = !rl.last_error;
      rerr.textContent = rl.last_error ? 'last reload failed' + (rl.last_error_at ? ' at ' + fmtTime(rl.last_error_at) : '') + ': ' + rl.last_error : '';
    } else {
      setText('reload-state', 'no reloader');
      rerr.hidden = true;
    }

    renderCounts(s);
    const rerr2 = $('recordings-error');
    if (s.recordings && typeof s.recordings === 'object') {
      setText('recordings-state', recordingsText(s.recordings));
      const le = s.recordings.last_error;
      rerr2.hidden = !le;
      rerr2.textContent = le ? 'last recording failed' + (s.recordings.last_error_at ? ' at ' + fmtTime(s.recordings.last_error_at) : '') + ': ' + le : '';
      setRecordingsOn(true);
    } else {
      setText('recordings-state', 'off');
      rerr2.hidden = true;
      setRecordingsOn(false);
    }

    if (st.mutations !== s.mutations) {
      st.mutations = s.mutations;
      $('mutations-off').hidden = s.mutations !== false;
      for (const b of document.querySelectorAll('button.mutate')) b.disabled = s.mutations === false;
    }
  }

  function fmtBytes(n) {
    if (typeof n !== 'number') return String(n);
    if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + ' GiB';
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
    if (n >= 1 << 10) return (n / (1 << 10)).toFixed(0) + ' KiB';
    return n + ' B';
  }
  // recordingsText is the recorder's account on one line: the known counters first,
  // drops summed over their reasons (those that happened named), then any others.
  function recordingsText(r) {
    const parts = [];
    const known = { count: 'on disk', recorded: 'recorded', labelled: 'labelled', removed: 'removed' };
    for (const k of ['count', 'recorded', 'labelled', 'removed']) {
      if (typeof r[k] === 'number') parts.push(r[k] + ' ' + known[k]);
    }
    if (typeof r.bytes === 'number') parts.push(fmtBytes(r.bytes));
    if (typeof r.dropped === 'number') parts.push(r.dropped + ' dropped');
    else if (r.dropped && typeof r.dropped === 'object') {
      let sum = 0;
      const why = [];
      for (const k of Object.keys(r.dropped).sort()) {
        const v = r.dropped[k];
        if (typeof v === 'number' && v > 0) { sum += v; why.push(k + ' ' + v); }
      }
      parts.push(sum + ' dropped' + (why.length ? ' (' + why.join(', ') + ')' : ''));
    }
    for (const k of Object.keys(r).sort()) {
      const v = r[k];
      if (k in known || k === 'bytes' || k === 'dropped' || k === 'last_error' || k === 'last_error_at') continue;
      if (v === null || typeof v === 'object') continue;
      parts.push(k.replace(/_/g, ' ') + ' ' + v);
    }
    return parts.length ? parts.join(' · ') : 'on';
  }

  const COUNTS = [
    ['frames', 'frames'], ['rejects', 'rejects'], ['pulses', 'pulses'], ['fail_safes', 'fail-safes'],
    ['dropped', 'dropped'], ['bad_frames', 'bad frames'], ['infer_errors', 'inference errors'],
    ['unmatched', 'unmatched'],
  ];
  function renderCounts(s) {
    const box = $('counts');
    const c = s.counts || {};
    const rows = COUNTS.filter(([k]) => k in c).map(([k, name]) => [k, name, c[k]]);
    rows.push(['events_dropped', 'page events lost', s.events_dropped]);
    rows.push(['stream_dropped', 'stream msgs lost', s.stream_dropped]);
    rows.push(['streams', 'open streams', s.streams]);
    rows.push(['streams_closed', 'streams closed (slow or gave way)', s.streams_closed]);
    rows.push(['hosts_refused', 'requests for another host', s.hosts_refused]);
    for (const [k, name, v] of rows) {
      let dd = document.getElementById('count-' + k);
      if (!dd) {
        const wrap = el('div', 'count');
        wrap.appendChild(el('dt', null, name));
        dd = el('dd');
        dd.id = 'count-' + k;
        wrap.appendChild(dd);
        box.appendChild(wrap);
      }
      dd.textContent = v === undefined || v === null ? '–' : String(v);
      const alert = (k === 'dropped' || k === 'bad_frames' || k === 'infer_errors' || k === 'unmatched' || k === 'fail_safes') && v > 0;
      dd.className = alert ? 'hot' : '';
    }
  }

  // ---- live frame ----
  const live = $('live');
  live.addEventListener('load', () => {
    st.liveLoading = false;
    live.classList.add('loaded');
    $('live-empty').hidden = true;
    if (st.liveShown) {
      setText('live-seq', st.liveShown.seq);
      setText('live-score', fmtScore(st.liveShown.score));
      const thr = st.status ? st.status.threshold : null;
      $('live-score').className = typeof thr === 'number' && st.liveShown.score >= thr ? 'hot' : '';
      setText('live-threshold', fmtScore(thr));
    }
    if (st.livePending) {
      const p = st.livePending;
      st.livePending = null;
      showLive(p);
    }
  });
  live.addEventListener('error', () => {
    st.liveLoading = false;
    if (!live.classList.contains('loaded')) $('live-empty').hidden = false;
    if (st.livePending) {
      const p = st.livePending;
      st.livePending = null;
      showLive(p);
    }
  });
  // showLive loads the image for one live message; while one loads, only the newest
  // message waits (a slow tablet skips frames rather than queueing them).
  function showLive(msg) {
    if (st.liveLoading) { st.livePending = msg; return; }
    st.liveLoading = true;
    st.liveShown = msg;
    live.src = '/api/live.png?seq=' + encodeURIComponent(msg.seq) + '&t=' + Date.now();
  }

  // ---- trend ----
  function addPoint(ev) {
    const t = Date.parse(ev.time);
    if (isNaN(t) || typeof ev.score !== 'number') return;
    st.points.push({ t, score: ev.score, threshold: ev.threshold, decision: ev.decision });
    if (st.points.length > TREND_MAX) st.points.splice(0, st.points.length - TREND_MAX);
    scheduleTrend();
  }
  function scheduleTrend() {
    if (st.trendScheduled) return;
    st.trendScheduled = true;
    setTimeout(() => { st.trendScheduled = false; drawTrend(); }, 200);
  }
  const trend = $('trend');
  function drawTrend() {
    const now = Date.now();
    const from = now - TREND_WINDOW_MS;
    let i = 0;
    while (i < st.points.length && st.points[i].t < from) i++;
    if (i > 0) st.points.splice(0, i);
    const pts = st.points;

    const dpr = window.devicePixelRatio || 1;
    const cssW = trend.clientWidth || 600, cssH = trend.clientHeight || 240;
    if (trend.width !== Math.round(cssW * dpr) || trend.height !== Math.round(cssH * dpr)) {
      trend.width = Math.round(cssW * dpr);
      trend.height = Math.round(cssH * dpr);
    }
    const g = trend.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    const L = 64, R = 12, T = 10, B = 28;
    const w = cssW - L - R, h = cssH - T - B;

    let thrNow = st.status && typeof st.status.threshold === 'number' ? st.status.threshold : null;
    let top = 0;
    for (const p of pts) {
      if (p.score > top) top = p.score;
      if (typeof p.threshold === 'number' && p.threshold > top) top = p.threshold;
    }
    if (thrNow !== null) top = Math.max(top, thrNow * 1.5);
    top = top > 0 ? top * 1.05 : 1;
    // a round step (1, 2 or 5 x 10^k) for about 4 grid lines, and the top on one
    const raw = top / 4, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = (raw / mag > 5 ? 10 : raw / mag > 2 ? 5 : raw / mag > 1 ? 2 : 1) * mag;
    top = Math.ceil(top / step) * step;
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    const x = (t) => L + (t - from) / TREND_WINDOW_MS * w;
    const y = (v) => T + h - Math.min(Math.max(v / top, 0), 1) * h;

    // axes and grid
    g.font = '13px system-ui, sans-serif';
    g.lineWidth = 1;
    g.strokeStyle = '#3a4048';
    g.fillStyle = '#c8ced6';
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let v = 0; v <= top + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(L, yy); g.lineTo(L + w, yy); g.stroke();
      g.fillText(v.toFixed(digits), L - 6, yy);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let m = 0; m <= 5; m++) {
      const xx = Math.round(x(from + m * 60000)) + 0.5;
      g.beginPath(); g.moveTo(xx, T); g.lineTo(xx, T + h); g.stroke();
      g.fillText(m === 5 ? 'now' : '−' + (5 - m) + ' min', Math.min(xx, L + w - 14), T + h + 6);
    }

    // threshold: a step line through each decision's threshold, to now
    g.strokeStyle = '#ffd23f';
    g.lineWidth = 2;
    g.setLineDash([8, 5]);
    g.beginPath();
    let started = false, last = null;
    for (const p of pts) {
      if (typeof p.threshold !== 'number') continue;
      if (!started) { g.moveTo(L, y(p.threshold)); started = true; }
      else if (p.threshold !== last) { g.lineTo(x(p.t), y(last)); g.lineTo(x(p.t), y(p.threshold)); }
      last = p.threshold;
    }
    if (thrNow !== null) {
      if (!started) { g.moveTo(L, y(thrNow)); last = thrNow; started = true; }
      else if (thrNow !== last) { g.lineTo(x(now), y(last)); }
      g.lineTo(L + w, y(thrNow));
    } else if (started) {
      g.lineTo(L + w, y(last));
    }
    g.stroke();
    g.setLineDash([]);
    if (thrNow !== null) {
      g.fillStyle = '#ffd23f';
      g.textAlign = 'left';
      g.textBaseline = 'bottom';
      g.fillText('threshold ' + thrNow.toFixed(4), L + 6, y(thrNow) - 4);
    }

    // points: passes first, rejects and fail-safes on top
    const draw = (filter, colour, r) => {
      g.fillStyle = colour;
      g.beginPath();
      for (const p of pts) {
        if (!filter(p)) continue;
        const px = x(p.t), py = y(p.score);
        g.moveTo(px + r, py);
        g.arc(px, py, r, 0, 2 * Math.PI);
      }
      g.fill();
    };
    draw((p) => p.decision === 'pass', '#4fc3f7', 2.5);
    draw((p) => p.decision === 'alarm', '#ffa726', 4);
    draw((p) => p.decision === 'reject', '#ff4d4d', 4.5);

    trend.dataset.points = String(pts.length);
    let rejects = 0;
    for (const p of pts) if (p.decision === 'reject') rejects++;
    trend.dataset.rejects = String(rejects);
    setText('trend-count', pts.length + ' decisions · ' + rejects + ' rejects');
  }
  window.addEventListener('resize', scheduleTrend);
  setInterval(scheduleTrend, 1000); // the window slides even when no decision comes

  // ---- rejects ----
  function setRecordingsOn(on) {
    if (st.recordingsOn === on) return;
    st.recordingsOn = on;
    clear($('rejects'));
    st.recEls.clear();
    setText('rejects-mode', on ? 'recorded frames: label them to grow the dataset' : 'from the stream (recordings are off)');
    if (on) refreshRecordings(); else renderRejectEvents();
  }

  function rejectMeta(ev) {
    const meta = el('div', 'meta');
    meta.appendChild(el('span', 'time', fmtTime(ev.time)));
    const sc = el('span', 'score', 'score ' + fmtScore(ev.score));
    if (typeof ev.threshold === 'number') sc.appendChild(el('span', 'muted', ' / ' + fmtScore(ev.threshold)));
    meta.appendChild(sc);
    if (ev.part) meta.appendChild(el('span', 'muted', 'part ' + ev.part));
    if (ev.seq) meta.appendChild(el('span', 'muted', 'seq ' + ev.seq));
    return meta;
  }

  function renderRejectEvents() {
    if (st.recordingsOn) return;
    const list = $('rejects');
    clear(list);
    for (const ev of st.rejectEvents) {
      const li = el('li', 'reject');
      li.dataset.event = String(ev.id);
      const body = el('div', 'body');
      body.appendChild(el('div', 'frame', ev.frame || '(no name)'));
      body.appendChild(rejectMeta(ev));
      li.appendChild(body);
      list.appendChild(li);
    }
    $('rejects-empty').hidden = st.rejectEvents.length > 0;
  }

  function scheduleRecordings(delay) {
    if (st.recTimer) return;
    st.recTimer = setTimeout(() => { st.recTimer = null; refreshRecordings(); }, delay);
  }

  async function refreshRecordings() {
    let data;
    try {
      data = await getJSON('/api/recordings?limit=' + REJECTS_MAX);
    } catch (e) {
      return;
    }
    if (data.off) { setRecordingsOn(false); return; }
    if (!st.recordingsOn) return;
    const recs = (data.recordings || []).slice();
    recs.sort((a, b) => (Date.parse(b.time) - Date.parse(a.time)) || (b.seq - a.seq));
    const list = $('rejects');
    const keep = new Set();
    recs.forEach((rec, i) => {
      const id = String(rec.id);
      keep.add(id);
      let li = st.recEls.get(id);
      if (!li) { li = recordingEntry(rec); st.recEls.set(id, li); }
      updateLabel(li, rec.label, rec.kind);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    for (const [id, li] of st.recEls) {
      if (!keep.has(id)) { li.remove(); st.recEls.delete(id); }
    }
    $('rejects-empty').hidden = recs.length > 0;
  }

  function recordingEntry(rec) {
    const id = String(rec.id);
    const li = el('li', 'reject recorded' + (rec.decision === 'reject' ? '' : ' near'));
    li.dataset.recording = id;
    const a = el('a', 'thumb');
    a.href = '/api/recordings/' + encodeURIComponent(id) + '/frame.png';
    a.target = '_blank';
    a.rel = 'noopener';
    const img = el('img');
    img.alt = 'overlay of recording ' + id;
    img.loading = 'lazy';
    img.src = '/api/recordings/' + encodeURIComponent(id) + '/overlay.png';
    a.appendChild(img);
    li.appendChild(a);

    const body = el('div', 'body');
    body.appendChild(el('div', 'frame', rec.frame || '(no name)'));
    const meta = rejectMeta(rec);
    if (rec.decision && rec.decision !== 'reject') meta.appendChild(el('span', 'tag', rec.decision === 'pass' ? 'near pass' : rec.decision));
    body.appendChild(meta);
    body.appendChild(el('div', 'label'));

    const fb = el('div', 'feedback');
    const yes = el('button', 'mutate defect', 'true defect');
    yes.type = 'button';
    const kind = el('input', 'kind');
    kind.type = 'text';
    kind.value = 'defect';
    kind.maxLength = 32;
    kind.pattern = '[a-z0-9_\\-]{1,32}';
    kind.title = 'the defect kind: 1 to 32 of a-z, 0-9, _ and -';
    kind.setAttribute('aria-label', 'defect kind');
    kind.spellcheck = false;
    const no = el('button', 'mutate false-reject', 'false reject');
    no.type = 'button';
    fb.appendChild(yes);
    fb.appendChild(kind);
    fb.appendChild(no);
    li.appendChild(body);
    const actions = el('div', 'actions');
    actions.appendChild(fb);
    const result = el('div', 'result');
    actions.appendChild(result);
    li.appendChild(actions);

    const send = async (label, k) => {
      yes.disabled = no.disabled = true;
      result.textContent = 'sending…';
      result.className = 'result';
      const body = { label };
      if (k) body.kind = k;
      const res = await post('/api/recordings/' + encodeURIComponent(id) + '/feedback', body);
      showResult(result, res, res.ok ? 'saved' + (res.data && res.data.saved ? ': ' + res.data.saved : '') : '');
      if (res.ok) updateLabel(li, label, k);
      yes.disabled = no.disabled = st.status && st.status.mutations === false;
    };
    yes.addEventListener('click', () => send('defect', kind.value.trim().toLowerCase().replace(/\s+/g, '_') || 'defect'));
    no.addEventListener('click', () => send('false_reject', ''));
    if (st.status && st.status.mutations === false) yes.disabled = no.disabled = true;
    return li;
  }

  function updateLabel(li, label, kind) {
    const node = li.querySelector('.label');
    if (!node) return;
    if (!label) { node.textContent = ''; li.classList.remove('labelled'); return; }
    node.textContent = 'labelled: ' + (label === 'false_reject' ? 'false reject' : 'defect' + (kind ? ' (' + kind + ')' : ''));
    li.classList.add('labelled');
  }

  // ---- faults ----
  function isFault(ev) {
    if (ev.kind === 'fail-safe' || ev.kind === 'camera lost' || ev.kind === 'reload failed') return true;
    return ev.kind === 'decision' && !!ev.reason && ev.reason !== 'score';
  }
  function faultText(ev) {
    const bits = [];
    if (ev.kind === 'decision') {
      bits.push(ev.reason + ' → ' + ev.decision);
      if (ev.frame) bits.push(ev.frame);
    } else {
      bits.push(ev.kind);
      if (ev.part) bits.push('part ' + ev.part);
      if (ev.cause) bits.push(ev.cause);
    }
    return bits.join(' · ');
  }
  function renderFaults() {
    const list = $('faults');
    clear(list);
    for (const ev of st.faults) {
      const li = el('li', 'fault kind-' + ev.kind.replace(/[^a-z]+/g, '-'));
      li.appendChild(el('span', 'time', fmtTime(ev.time)));
      li.appendChild(el('span', 'what', faultText(ev)));
      if (ev.err) li.appendChild(el('div', 'err', ev.err));
      list.appendChild(li);
    }
    $('faults-empty').hidden = st.faults.length > 0;
  }

  // ---- events ----
  // onEvent takes one API event (from /api/events or the stream); ids dedupe the two.
  function onEvent(ev, batch) {
    if (!ev || typeof ev.id !== 'number' || ev.id <= st.lastId) return;
    st.lastId = ev.id;
    if (ev.kind === 'decision') {
      addPoint(ev);
      if (ev.decision === 'reject') {
        st.rejectEvents.unshift(ev);
        if (st.rejectEvents.length > REJECTS_MAX) st.rejectEvents.length = REJECTS_MAX;
        if (!batch) {
          if (st.recordingsOn) scheduleRecordings(800); else renderRejectEvents();
        }
      }
    }
    if (isFault(ev)) {
      st.faults.unshift(ev);
      if (st.faults.length > FAULTS_MAX) st.faults.length = FAULTS_MAX;
      if (!batch) renderFaults();
    }
  }

  // Stream events that come while a backfill is reading wait for it, so that ids
  // stay in order (a newer id first would hide the older ones the backfill reads).
  let backfilling = false;
  let held = [];
  function streamEvent(ev) {
    if (backfilling) held.push(ev); else onEvent(ev, false);
  }

  // backfill reads the decisions and faults kept since the newest event seen (at load
  // and after a reconnect), oldest first, so that the trend and the lists miss
  // nothing the daemon still keeps. Faults are read on their own: they are rare and
  // decisions would push them out of one read of the last 512 events.
  let again = false;
  async function backfill() {
    if (backfilling) { again = true; return; }
    backfilling = true;
    try {
      const after = st.lastId;
      const [d, f] = await Promise.all([
        getJSON('/api/events?kind=decision&limit=512&after=' + after),
        getJSON('/api/events?kind=fault&limit=' + FAULTS_MAX + '&after=' + after),
      ]);
      const byId = new Map();
      for (const ev of (d.events || []).concat(f.events || [])) byId.set(ev.id, ev);
      const evs = Array.from(byId.values()).sort((a, b) => a.id - b.id);
      for (const ev of evs) onEvent(ev, true);
    } catch (e) {
      // the stream's next reconnect reads again
    } finally {
      backfilling = false;
      if (again) { again = false; backfill(); return; }
      const h = held;
      held = [];
      for (const ev of h) onEvent(ev, true);
      renderFaults();
      if (st.recordingsOn) refreshRecordings(); else renderRejectEvents();
      drawTrend();
    }
  }

  // ---- stream ----
  let streamTimer = null;
  function streamState(up, text) {
    st.streamUp = up;
    setState($('stream'), text, up ? 'good' : 'bad');
    document.body.classList.toggle('stream-down', !up);
  }
  function connect() {
    const es = new EventSource('/api/stream');
    es.addEventListener('open', () => {
      streamState(true, 'connected');
      backfill();
    });
    es.addEventListener('error', () => {
      streamState(false, es.readyState === EventSource.CLOSED ? 'disconnected' : 'disconnected: reconnecting');
      if (es.readyState === EventSource.CLOSED) {
        // the server refused (e.g. too many streams): try again ourselves
        es.close();
        setTimeout(connect, 5000);
      }
    });
    es.addEventListener('status', (m) => {
      let s;
      try { s = JSON.parse(m.data); } catch (e) { return; }
      applyStatus(s);
      if (!st.streamUp) streamState(true, 'connected');
      clearTimeout(streamTimer);
      streamTimer = setTimeout(() => streamState(false, 'disconnected: no status for 5 s'), 5000);
    });
    es.addEventListener('event', (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      streamEvent(ev);
    });
    es.addEventListener('live', (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg && msg.seq !== undefined) showLive(msg);
    });
  }

  // ---- controls ----
  function tokenState() {
    const tok = token();
    setText('token-state', tok ? 'token set for this tab (kept in session storage only)' : 'no token: the buttons need it');
  }
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('token').value.trim();
    try {
      if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (err) { /* storage off: nothing kept */ }
    $('token').value = '';
    tokenState();
  });
  $('token-clear').addEventListener('click', () => {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (err) { /* */ }
    $('token').value = '';
    tokenState();
  });
  $('alarm-reset').classList.add('mutate');
  $('reload').classList.add('mutate');
  $('alarm-reset').addEventListener('click', async () => {
    const res = await post('/api/alarm/reset');
    showResult($('action-result'), res, 'alarm reset requested at ' + fmtTime(new Date()));
  });
  $('reload').addEventListener('click', async () => {
    const res = await post('/api/reload');
    showResult($('action-result'), res, 'reloaded: generation ' + (res.data ? res.data.generation : '?'));
  });

  // ---- start ----
  tokenState();
  streamState(false, 'disconnected');
  getJSON('/api/status').then(applyStatus).catch(() => {});
  // The latest render, if there is one yet (404 until the first).
  st.liveLoading = true;
  live.src = '/api/live.png?t=' + Date.now();
  connect();
  drawTrend();
  // Labels change and near passes are recorded without a reject event: look again.
  setInterval(() => { if (st.recordingsOn) scheduleRecordings(0); }, 10000);
})();
