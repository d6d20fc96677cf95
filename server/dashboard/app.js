// The lrtune dashboard: a page of jobs and a page per job, fed by the
// coordinator's JSON API and its Server-Sent Events (docs/dashboard.md).
// No framework; Chart.js (Debian's libjs-chart.js) draws the curves.
//
// The bearer token is typed once (or arrives in the URL's fragment from
// `lrtune range-test --ui`) and kept in sessionStorage: this tab keeps it
// until it is closed, and it is sent only as an Authorization header.
// Events are read with fetch() rather than EventSource, which cannot send
// that header; a dropped stream reconnects with Last-Event-ID, the seq of
// the last event it got, as WatchJob resumes.
'use strict';

(() => {
  const TOKEN_KEY = 'lrtune.token';
  const COLORS = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bf8700',
    '#1b7c83', '#e16f24', '#6e7781', '#a40e26', '#4d2d8f'];
  const LIST_REFRESH_MS = 5000;
  const DRAW_DELAY_MS = 50;

  // What tests read: the stream's state and, per point drawn, how long
  // after the coordinator stored it (ms, same machine's clock).
  const stats = {
    connected: false, reconnects: 0, events: 0, lastSeq: 0, terminal: false,
    pointsReceived: 0, pointsDrawn: 0, maxLagMs: 0, lagsMs: [],
    positionCurves: 0,  // seeds whose smoothed line is now the analysis's
  };
  window.lrtuneDashboard = { stats };

  let who = null;          // {name, role, sees_all}
  let teardown = [];       // what the current view stops when left

  // ---------------------------------------------------------------- utils

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Replaces `node`'s children, leaving out null and false (parts of a
  // view that do not apply).
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  function main(...children) {
    fill(document.getElementById('main'), ...children);
  }

  // Protobuf's JSON: 64-bit integers come as strings, NaN as "NaN".
  function num(v) {
    if (v === undefined || v === null) return NaN;
    return typeof v === 'number' ? v : Number(v);
  }

  function fmt(v, digits = 3) {
    const x = num(v);
    if (!Number.isFinite(x)) return '–';
    if (x === 0) return '0';
    const a = Math.abs(x);
    if (a >= 1e4 || a < 1e-3) return x.toExponential(digits - 1);
    return String(Number(x.toPrecision(digits)));
  }

  function enumName(value, prefix) {
    if (value === undefined || value === null) return 'unknown';
    if (typeof value === 'number') return 'state ' + value;
    return value.startsWith(prefix) ? value.slice(prefix.length).toLowerCase() : value.toLowerCase();
  }

  function badge(name) {
    const known = ['queued', 'running', 'succeeded', 'failed', 'cancelled',
      'pending', 'pruned'];
    return el('span', { class: 'badge ' + (known.includes(name) ? name : 'other') }, name);
  }

  function jobState(job) { return enumName(job.state, 'JOB_STATE_'); }
  function trialState(trial) { return enumName(trial.state, 'TRIAL_STATE_'); }
  function isTerminal(state) { return ['succeeded', 'failed', 'cancelled'].includes(state); }
  function jobKind(job) { return job.grid ? 'grid' : 'range test'; }

  function when(ts) {
    if (!ts) return '–';
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? ts : d.toLocaleString();
  }

  // -------------------------------------------------------------- the API

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

  function authHeaders() {
    const t = token();
    return t ? { Authorization: 'Bearer ' + t } : {};
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options = {}) {
    const res = await fetch(path, {
      ...options, cache: 'no-store',
      headers: { ...authHeaders(), ...(options.headers || {}) },
    });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      throw new ApiError(res.status, (body && body.error) || res.statusText);
    }
    return body;
  }

  // Reads /api/jobs/<id>/events, calling onEvent(kind, data, seq) for each
  // event, until the job's terminal event or stop(). Reconnects after a
  // drop, resuming after the last seq seen.
  function streamEvents(jobId, onEvent, onStatus) {
    let lastSeq = 0;
    let stopped = false;
    let controller = null;
    const run = async () => {
      let delay = 500;
      while (!stopped) {
        controller = new AbortController();
        try {
          const res = await fetch('/api/jobs/' + encodeURIComponent(jobId) + '/events', {
            headers: { ...authHeaders(), 'Accept': 'text/event-stream',
              'Last-Event-ID': String(lastSeq) },
            cache: 'no-store', signal: controller.signal,
          });
          if (res.status === 204) { stats.terminal = true; onStatus('ended'); return; }
          if (!res.ok) {
            let message = res.statusText;
            try { message = (await res.json()).error || message; } catch (e) { /* keep */ }
            onStatus('error', message);
            if (res.status === 401 || res.status === 403 || res.status === 404) return;
            throw new Error(message);
          }
          stats.connected = true;
          onStatus('live');
          delay = 500;
          const reader = res.body.getReader();
          const decoder = new TextDecoder();
          let buffer = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += decoder.decode(value, { stream: true });
            let end;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              let id = null; let kind = 'message'; let data = '';
              for (const line of block.split('\n')) {
                if (line.startsWith(':')) continue;
                const colon = line.indexOf(':');
                const field = colon < 0 ? line : line.slice(0, colon);
                let text = colon < 0 ? '' : line.slice(colon + 1);
                if (text.startsWith(' ')) text = text.slice(1);
                if (field === 'id') id = text;
                else if (field === 'event') kind = text;
                else if (field === 'data') data += (data ? '\n' : '') + text;
              }
              if (id === null && !data) continue;
              if (id !== null) lastSeq = Number(id);
              stats.events += 1;
              stats.lastSeq = lastSeq;
              let parsed = null;
              try { parsed = JSON.parse(data); } catch (e) { parsed = null; }
              if (kind === 'error') { onStatus('error', parsed && parsed.error); continue; }
              const terminal = onEvent(kind, parsed, lastSeq);
              if (terminal) { stats.terminal = true; onStatus('ended'); stopped = true; }
            }
          }
        } catch (e) {
          if (stopped) return;
        }
        if (stopped) return;
        stats.connected = false;
        stats.reconnects += 1;
        onStatus('reconnecting');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10000);
      }
    };
    run();
    return () => { stopped = true; if (controller) controller.abort(); };
  }

  // ------------------------------------------------------------- the login

  function showLogin(message) {
    const input = el('input', { type: 'password', autocomplete: 'off',
      placeholder: 'bearer token', id: 'token-input' });
    const form = el('form', { class: 'login', onsubmit: (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      route();
    } },
    el('h1', {}, 'Sign in'),
    el('p', {}, 'Paste a token from the coordinator\'s tokens file (role client or admin). ',
      'This tab keeps it until it is closed, and sends it only to this server.'),
    message ? el('p', { class: 'error' }, message) : null,
    input,
    el('button', { type: 'submit' }, 'Open the dashboard'));
    main(form);
    input.focus();
  }

  async function loadWho() {
    try {
      who = await api('/api/whoami');
    } catch (e) {
      who = null;
      if (e.status === 401 || e.status === 403) {
        showLogin(token() ? (e.status === 403 ? e.message : 'That token was refused.') : null);
        return false;
      }
      main(el('p', { class: 'error' }, 'The server did not answer: ' + e.message));
      return false;
    }
    document.getElementById('who').textContent =
      who.name + ' (' + who.role + (who.sees_all ? ', every owner\'s jobs' : '') + ')';
    document.getElementById('forget').hidden = !token();
    return true;
  }

  // ------------------------------------------------------------- job list

  const listFilters = { states: new Set(), kind: 'all', text: '' };

  function viewJobs() {
    const stateNames = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
    const body = el('tbody');
    const more = el('button', { hidden: true }, 'More');
    const note = el('span', { class: 'muted', id: 'jobs-count' });
    let rows = [];
    let nextToken = '';

    const query = (pageToken) => {
      const params = new URLSearchParams();
      if (listFilters.states.size) params.set('state', [...listFilters.states].join(','));
      params.set('page_size', '50');
      if (pageToken) params.set('page_token', pageToken);
      return '/api/jobs?' + params.toString();
    };
    const render = () => {
      const text = listFilters.text.toLowerCase();
      const shown = rows.filter((job) =>
        (listFilters.kind === 'all' || jobKind(job) === listFilters.kind) &&
        (!text || job.job_id.toLowerCase().includes(text) ||
          (job.owner || '').toLowerCase().includes(text)));
      fill(body, ...shown.map((job) => el('tr', {},
        el('td', { class: 'mono' }, el('a', { href: '#/jobs/' + encodeURIComponent(job.job_id) }, job.job_id)),
        el('td', {}, jobKind(job)),
        el('td', {}, badge(jobState(job))),
        who && who.sees_all ? el('td', {}, job.owner || '') : null,
        el('td', {}, when(job.create_time)),
        el('td', { class: 'num' }, (job.tasks_done || 0) + ' / ' + (job.tasks_total || 0)),
        el('td', {}, resultSummary(job)))));
      note.textContent = shown.length + ' shown' + (shown.length !== rows.length ? ' of ' + rows.length : '');
      more.hidden = !nextToken;
    };
    const load = async (append) => {
      try {
        const page = await api(query(append ? nextToken : ''));
        const jobs = page.jobs || [];
        rows = append ? rows.concat(jobs) : jobs;
        if (!append) nextToken = page.next_page_token || '';
        else nextToken = page.next_page_token || '';
        render();
      } catch (e) {
        if (e.status === 401) { showLogin('The token was refused.'); return; }
        note.textContent = 'Could not list the jobs: ' + e.message;
      }
    };
    more.addEventListener('click', () => load(true));

    const checks = stateNames.map((name) => el('label', {},
      el('input', { type: 'checkbox', checked: listFilters.states.has(name), onchange: (e) => {
        if (e.target.checked) listFilters.states.add(name); else listFilters.states.delete(name);
        load(false);
      } }), name));
    const kind = el('select', { onchange: (e) => { listFilters.kind = e.target.value; render(); } },
      ...['all', 'range test', 'grid'].map((k) => el('option', { value: k, selected: listFilters.kind === k }, k)));
    const search = el('input', { type: 'text', placeholder: who && who.sees_all ? 'job id or owner' : 'job id',
      value: listFilters.text, oninput: (e) => { listFilters.text = e.target.value; render(); } });

    main(el('h1', {}, 'Jobs'),
      el('div', { class: 'filters' }, el('span', { class: 'muted' }, 'State'), ...checks,
        el('span', { class: 'muted' }, 'Kind'), kind, search, note),
      el('table', { id: 'jobs' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Job'), el('th', {}, 'Kind'), el('th', {}, 'State'),
          who && who.sees_all ? el('th', {}, 'Owner') : null, el('th', {}, 'Created'),
          el('th', { class: 'num' }, 'Tasks done'), el('th', {}, 'Result'))),
        body),
      more);
    load(false);
    // The list is a page of the store, re-read while it is on screen.
    const timer = setInterval(() => { if (!document.hidden && !nextToken) load(false); }, LIST_REFRESH_MS);
    teardown.push(() => clearInterval(timer));
  }

  function resultSummary(job) {
    if (job.range_test_result && job.range_test_result.recommendation) {
      const r = job.range_test_result.recommendation;
      return num(r.max_lr) > 0 ? 'CLR ' + fmt(r.min_lr) + ' .. ' + fmt(r.max_lr) : 'no bounds';
    }
    if (job.grid_result && job.grid_result.ranking && job.grid_result.ranking.length) {
      return 'best trial #' + job.grid_result.ranking[0];
    }
    return job.failure ? el('span', { class: 'error' }, job.failure) : '';
  }

  // ------------------------------------------------------------ the charts

  // Shades [minLr, maxLr] and marks the suggestions on a log-LR chart.
  const boundsPlugin = {
    id: 'lrtuneBounds',
    beforeDatasetsDraw(chart) {
      const marks = chart.$lrtune;
      if (!marks) return;
      const { ctx, chartArea: area, scales: { x } } = chart;
      ctx.save();
      if (marks.minLr > 0 && marks.maxLr > 0) {
        const left = Math.max(area.left, x.getPixelForValue(marks.minLr));
        const right = Math.min(area.right, x.getPixelForValue(marks.maxLr));
        ctx.fillStyle = 'rgba(26, 127, 55, 0.12)';
        if (right > left) ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
      }
      ctx.font = '11px system-ui, sans-serif';
      ctx.setLineDash([4, 3]);
      let row = 0;
      for (const mark of marks.suggestions || []) {
        if (!(mark.lr > 0)) continue;
        const px = x.getPixelForValue(mark.lr);
        if (px < area.left || px > area.right) continue;
        ctx.strokeStyle = mark.color;
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        ctx.fillStyle = mark.color;
        ctx.fillText(mark.label, px + 3, area.top + 12 + 13 * (row++ % 4));
      }
      ctx.restore();
    },
  };

  function isDecade(v) {
    const e = Math.log10(v);
    return Math.abs(e - Math.round(e)) < 1e-9;
  }

  function lineChart(canvas, xTitle, xLog, yTitle) {
    return new Chart(canvas, {
      type: 'line',
      data: { datasets: [] },
      plugins: [boundsPlugin],
      options: {
        animation: false, parsing: false, normalized: true, spanGaps: false,
        responsive: true, maintainAspectRatio: false,
        elements: { point: { radius: 0, hitRadius: 4 }, line: { borderWidth: 1.5, tension: 0 } },
        interaction: { mode: 'nearest', intersect: false },
        scales: {
          x: { type: xLog ? 'logarithmic' : 'linear', title: { display: true, text: xTitle },
            // A log axis is labelled and ruled at decades only, as 1e-3.
            ticks: xLog ? { autoSkip: false, maxRotation: 0,
              callback: (v) => (isDecade(v) ? '1e' + Math.round(Math.log10(v)) : '') } : {},
            grid: xLog ? { color: (c) => (c.tick && isDecade(c.tick.value) ? '#e6e6e6' : 'transparent') } : {} },
          y: { type: 'linear', title: { display: true, text: yTitle } },
        },
        plugins: { legend: { labels: { boxWidth: 12 } } },
      },
    });
  }

  // A chart redrawn at most every DRAW_DELAY_MS, recording for each point
  // drawn how long ago the coordinator stored it.
  function throttledDraw(chart, beforeDraw) {
    let pending = false;
    let stamps = [];
    const draw = () => {
      pending = false;
      if (beforeDraw) beforeDraw();
      chart.update('none');
      const now = Date.now();
      for (const t of stamps) {
        const lag = now - t;
        stats.pointsDrawn += 1;
        if (stats.lagsMs.length < 200000) stats.lagsMs.push(lag);
        if (lag > stats.maxLagMs) stats.maxLagMs = lag;
      }
      stamps = [];
    };
    return (stamp) => {
      if (stamp !== undefined) stamps.push(stamp);
      if (!pending) { pending = true; setTimeout(draw, DRAW_DELAY_MS); }
    };
  }

  // The range test phase (a range-test job, or a grid's range test):
  // raw and smoothed loss per seed against the LR on a log axis.
  function rangeCurves(container) {
    const canvas = el('canvas', { id: 'curve' });
    container.append(el('div', { class: 'chart' }, canvas));
    const chart = lineChart(canvas, 'learning rate (log scale)', true, 'loss');
    const seeds = new Map();  // seed -> {raw, smoothed}
    let evals = null;
    const firstSmoothed = [];
    let lowest = Infinity;
    const fitY = () => {
      // Keep the view on the interesting part: up to half again the
      // starting loss, not the divergence's blow-up.
      if (!firstSmoothed.length || !Number.isFinite(lowest)) return;
      const start = Math.max(...firstSmoothed);
      const top = start * 1.5;
      chart.options.scales.y.max = top > lowest ? top : undefined;
      chart.options.scales.y.min = lowest > 0 ? lowest * 0.9 : undefined;
    };
    const redraw = throttledDraw(chart, fitY);
    const seedSets = (seed) => {
      if (!seeds.has(seed)) {
        const color = COLORS[seed % COLORS.length];
        const raw = { label: 'seed ' + seed + ' raw', data: [], borderColor: color + '55',
          backgroundColor: color + '55', borderWidth: 1 };
        const smoothed = { label: 'seed ' + seed + ' smoothed', data: [], borderColor: color,
          backgroundColor: color, borderWidth: 2 };
        chart.data.datasets.push(raw, smoothed);
        seeds.set(seed, { raw, smoothed });
      }
      return seeds.get(seed);
    };
    return {
      chart,
      point(p) {
        stats.pointsReceived += 1;
        const sets = seedSets(p.seed);
        const lr = num(p.lr);
        const loss = p.loss === null ? null : num(p.loss);
        const smoothed = p.smoothed === null ? null : num(p.smoothed);
        sets.raw.data.push({ x: lr, y: Number.isFinite(loss) ? loss : null });
        sets.smoothed.data.push({ x: lr, y: Number.isFinite(smoothed) ? smoothed : null });
        if (sets.smoothed.data.length === 1 && Number.isFinite(smoothed)) firstSmoothed.push(smoothed);
        if (Number.isFinite(smoothed)) lowest = Math.min(lowest, smoothed);
        redraw(p.t);
      },
      evaluation(e) {
        if (!evals) {
          evals = { label: 'validation loss', data: [], type: 'scatter', showLine: false,
            pointRadius: 3, borderColor: '#6e7781', backgroundColor: '#6e7781' };
          chart.data.datasets.push(evals);
        }
        evals.data.push({ x: num(e.lr), y: num(e.val_loss) });
        redraw();
      },
      // A seed's own analysis (its Recommendation.position): the curve its
      // bounds were read from, zero-lag up to the divergence, replaces the
      // causal EMA drawn while the points streamed, which runs late.
      seedAnalysis(seed, rec) {
        const position = (rec && rec.position) || [];
        const sets = seeds.get(seed);
        if (!sets || !position.length) return;
        sets.smoothed.data = position.slice(0, sets.raw.data.length).map((v, i) => {
          const y = num(v);
          return { x: sets.raw.data[i].x, y: Number.isFinite(y) ? y : null };
        });
        stats.positionCurves += 1;
        redraw();
      },
      recommendation(rec) {
        const s = [];
        const add = (key, label, color) => { if (num(rec[key]) > 0) s.push({ lr: num(rec[key]), label, color }); };
        // Whichever suggestions the server's Recommendation carries
        // (results.proto); an unset one is not drawn.
        add('lr_steepest', 'steepest', '#cf222e');
        add('lr_valley', 'valley', '#1a7f37');
        add('lr_minimum', 'minimum/10', '#8250df');
        add('lr_slide', 'slide', '#bf8700');
        add('lr_steep', 'steep', '#1b7c83');
        add('lr_lowest', 'lowest', '#6e7781');
        chart.$lrtune = { minLr: num(rec.min_lr), maxLr: num(rec.max_lr), suggestions: s };
        redraw();
      },
    };
  }

  function facts(rows) {
    return el('table', { class: 'facts' }, el('tbody', {}, ...rows
      .filter((r) => r && r[1] !== undefined && r[1] !== null && r[1] !== '')
      .map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', { class: 'mono' }, v)))));
  }

  function recommendationPanel(rec, title) {
    const oc = rec.one_cycle || {};
    const warnings = rec.warnings || [];
    return el('div', { class: 'panel', id: 'recommendation' },
      el('h2', {}, title),
      num(rec.max_lr) > 0 ? facts([
        ['CLR bounds', 'min_lr ' + fmt(rec.min_lr, 4) + '   max_lr ' + fmt(rec.max_lr, 4)],
        ['stepsize', (rec.stepsize_iterations || 0) + ' iterations' +
          (num(rec.stepsize_epochs) > 0 ? ' (' + fmt(rec.stepsize_epochs) + ' epochs)' : '')],
        ['suggestions', ['steepest', 'valley', 'minimum', 'slide', 'steep', 'lowest']
          .filter((k) => rec['lr_' + k] !== undefined)
          .map((k) => k + ' ' + fmt(rec['lr_' + k])).join('   ')],
        ['1cycle', 'max_lr ' + fmt(oc.max_lr, 4) + '  div_factor ' + fmt(oc.div_factor) +
          '  final_div_factor ' + fmt(oc.final_div_factor) + '  pct_start ' + fmt(oc.pct_start) +
          '  momentum ' + fmt(oc.base_momentum) + '..' + fmt(oc.max_momentum)],
        ['seeds', (rec.seeds || 1) + (num(rec.spread_decades) > 0 ? ', spread ' +
          fmt(rec.spread_decades, 2) + ' decades, max_lr ' + fmt(rec.max_lr_low) + '..' +
          fmt(rec.max_lr_high) : '')],
        ['points used', String(rec.points_used || 0) +
          (rec.diverged_at !== undefined ? ' (diverged at point ' + rec.diverged_at + ')' : '')],
      ]) : el('p', {}, 'No bounds: the loss never decreased.'),
      warnings.length ? el('ul', {}, ...warnings.map((w) =>
        el('li', { class: 'warning' }, (w.code ? w.code + ': ' : '') + (w.message || '')))) : null);
  }

  function snippetsPanel(snippets) {
    if (!snippets) return null;
    const block = (title, text, id) => {
      const pre = el('pre', { class: 'snippet', id }, text);
      const copy = el('button', { onclick: async () => {
        try { await navigator.clipboard.writeText(text); copy.textContent = 'Copied'; } catch (e) {
          const range = document.createRange(); range.selectNodeContents(pre);
          const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
          copy.textContent = 'Selected: press Ctrl-C';
        }
        setTimeout(() => { copy.textContent = 'Copy'; }, 2000);
      } }, 'Copy');
      return [el('div', { class: 'snippet-head' }, el('strong', {}, title), copy), pre];
    };
    return el('div', { class: 'panel', id: 'snippets' },
      el('h2', {}, 'Use it'),
      ...block('PyTorch OneCycleLR', snippets.one_cycle, 'snippet-one-cycle'),
      ...block('PyTorch CyclicLR', snippets.cyclic, 'snippet-cyclic'),
      ...block('lrtune.torch scheduler', snippets.lrtune_torch, 'snippet-lrtune'));
  }

  // ------------------------------------------------------------- job page

  function cancelButton(job, refresh) {
    if (isTerminal(jobState(job))) return null;
    let armed = false;
    const button = el('button', { class: 'danger', id: 'cancel' }, 'Cancel job');
    button.addEventListener('click', async () => {
      if (!armed) {
        armed = true; button.classList.add('armed'); button.textContent = 'Confirm cancel';
        setTimeout(() => { armed = false; button.classList.remove('armed'); button.textContent = 'Cancel job'; }, 4000);
        return;
      }
      button.disabled = true;
      try {
        await api('/api/jobs/' + encodeURIComponent(job.job_id) + '/cancel', { method: 'POST' });
      } catch (e) {
        button.textContent = 'Cancel failed: ' + e.message;
      }
      refresh();
    });
    return button;
  }

  function viewJob(jobId) {
    const header = el('div');
    const live = el('span', { class: 'live off', id: 'live' }, 'connecting');
    const curves = el('div');
    const side = el('div');
    const trialsBox = el('div');
    main(header, curves, trialsBox, side);
    let job = null;
    let range = null;     // the range-test chart
    let trials = null;    // the grid's trial view
    let refreshTimer = null;

    const renderHeader = () => {
      const state = jobState(job);
      const spec = job.range_test || job.grid || {};
      const run = spec.run || {};
      const model = run.model || {};
      const data = run.data || {};
      fill(header, 
        el('h1', {}, (job.grid ? 'Grid search ' : 'Range test ') , el('span', { class: 'mono' }, job.job_id)),
        el('div', { class: 'status-line' }, badge(state), live,
          el('span', { class: 'muted' }, 'owner ' + job.owner + ' · created ' + when(job.create_time) +
            ' · tasks ' + (job.tasks_done || 0) + '/' + (job.tasks_total || 0)),
          el('span', { class: 'muted' }, enumName(model.kind, 'MODEL_KIND_') + ' on ' +
            (data.name || (data.inline_data ? 'inline data' : '?'))),
          cancelButton(job, refresh)),
        job.failure ? el('p', { class: 'error' }, job.failure) : null);
    };

    const renderSide = (snippets) => {
      const rec = job.range_test_result ? job.range_test_result.recommendation
        : job.grid_result ? job.grid_result.bounds : null;
      if (rec && range) range.recommendation(rec);
      fill(side, el('div', { class: 'row' },
        rec ? recommendationPanel(rec, job.grid ? 'Bounds from the range test' : 'Recommendation') : null,
        snippetsPanel(snippets)));
    };

    const load = async () => {
      const body = await api('/api/jobs/' + encodeURIComponent(jobId));
      job = body.job;
      renderHeader();
      if (job.grid) {
        if (!trials) trials = trialView(trialsBox);
        trials.update(job);
      }
      renderSide(body.snippets);
    };
    function refresh() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => load().catch(() => {}), 300);
    }

    const start = async () => {
      try {
        await load();
      } catch (e) {
        if (e.status === 401) { showLogin('The token was refused.'); return; }
        main(el('h1', {}, 'Job ' + jobId), el('p', { class: 'error' },
          e.status === 404 ? 'No such job (or not one of yours).' : e.message));
        return;
      }
      const hasRange = !!(job.range_test || (job.grid && job.grid.range_test));
      if (hasRange) {
        curves.append(el('h2', {}, job.grid ? 'Range test' : 'Loss against learning rate'));
        range = rangeCurves(curves);
        const rec = job.range_test_result ? job.range_test_result.recommendation
          : job.grid_result ? job.grid_result.bounds : null;
        if (rec) range.recommendation(rec);
      }
      const stop = streamEvents(jobId, (kind, data) => {
        if (kind === 'points') {
          // [trial, seed, step, lr, loss, smoothed, t] each (docs/dashboard.md).
          for (const [trial, seed, step, lr, loss, smoothed, t] of data.points) {
            const p = { trial, seed, step, lr, loss, smoothed, t };
            if (trial >= 0) { if (trials) trials.point(p); } else if (range) range.point(p);
          }
          return false;
        }
        if (kind === 'evaluation') {
          const e = data.evaluation || {};
          const origin = data.origin || {};
          if (origin.trial_index === undefined && range) range.evaluation(e);
          return false;
        }
        if (kind === 'recommendation') {
          const r = data.recommendation || {};
          if (r.seed_index === undefined && range) { range.recommendation(r.recommendation || {}); refresh(); }
          else if (range) range.seedAnalysis(r.seed_index, r.recommendation);
          return false;
        }
        if (kind === 'state_changed') {
          refresh();
          const s = enumName((data.state_changed || {}).state, 'JOB_STATE_');
          return isTerminal(s);
        }
        if (kind === 'trial_started' || kind === 'trial_finished' || kind === 'ranking' ||
            kind === 'attempt_ended') {
          refresh();
        }
        return false;
      }, (status, message) => {
        live.className = 'live ' + (status === 'live' ? 'on' : 'off');
        live.textContent = status === 'live' ? 'live' : status === 'ended' ? 'finished' :
          status === 'error' ? 'stream error: ' + (message || '') : status;
      });
      teardown.push(stop);
    };
    teardown.push(() => clearTimeout(refreshTimer));
    start();
  }

  // A grid's trials: ranked table, and each trial's training loss by step.
  function trialView(container) {
    const canvas = el('canvas', { id: 'trials-chart' });
    const table = el('tbody');
    const computeLine = el('p', { class: 'muted', id: 'compute' });
    container.append(el('h2', {}, 'Trials'), computeLine,
      el('div', { class: 'chart small' }, canvas),
      el('table', { id: 'trials' }, el('thead', {}, el('tr', {},
        el('th', { class: 'num' }, 'Rank'), el('th', { class: 'num' }, '#'), el('th', {}, 'Trial'),
        el('th', {}, 'State'), el('th', { class: 'num' }, 'Objective'),
        el('th', { class: 'num' }, 'Val loss'), el('th', { class: 'num' }, 'Val acc'),
        el('th', { class: 'num' }, 'Steps'), el('th', { class: 'num' }, 'Train s'), el('th', {}, 'Note'))),
      table));
    const chart = lineChart(canvas, 'step', false, 'training loss (smoothed)');
    const sets = new Map();  // trial index -> dataset
    let selected = null;
    const redraw = throttledDraw(chart);
    const setFor = (index) => {
      if (!sets.has(index)) {
        const color = COLORS[index % COLORS.length];
        const set = { label: '#' + index, data: [], borderColor: color, backgroundColor: color, borderWidth: 1.5 };
        chart.data.datasets.push(set);
        sets.set(index, set);
      }
      return sets.get(index);
    };
    const highlight = () => {
      for (const [index, set] of sets) {
        set.borderWidth = selected === null ? 1.5 : index === selected ? 3 : 1;
        set.borderColor = COLORS[index % COLORS.length] + (selected === null || index === selected ? '' : '40');
      }
      redraw();
    };
    const view = {
      point(p) {
        stats.pointsReceived += 1;
        const smoothed = p.smoothed === null ? null : num(p.smoothed);
        setFor(p.trial).data.push({ x: num(p.step), y: Number.isFinite(smoothed) ? smoothed : null });
        redraw(p.t);
      },
      update(job) {
        const trials = (job.trials || []).slice();
        const ranked = (job.grid_result && job.grid_result.ranking) || [];
        const order = (t) => t.rank !== undefined ? t.rank : 1e6 + (t.trial_index || 0);
        trials.sort((a, b) => order(a) - order(b));
        let steps = 0; let seconds = 0; let done = 0;
        for (const t of trials) {
          steps += num(t.steps) || 0;
          seconds += num(t.train_seconds) || 0;
          if (isTerminal(trialState(t)) || trialState(t) === 'pruned') done += 1;
          const set = setFor(t.trial_index || 0);
          set.label = '#' + (t.trial_index || 0) + ' ' + (t.label || '');
        }
        computeLine.textContent = trials.length + ' trials, ' + done + ' ended, ' +
          ranked.length + ' ranked · compute used: ' + steps + ' steps, ' + fmt(seconds) + ' s of training';
        fill(table, ...trials.map((t) => {
          const index = t.trial_index || 0;
          const state = trialState(t);
          const final = t.final_eval || {};
          const note = t.failure || (num(t.resumed_from_step) > 0 ? 'resumed from step ' + t.resumed_from_step : '');
          return el('tr', { class: (t.rank === 1 ? 'best ' : '') + (selected === index ? 'selected' : ''),
            onclick: () => { selected = selected === index ? null : index; highlight(); view.update(job); } },
          el('td', { class: 'num' }, t.rank !== undefined ? String(t.rank) : ''),
          el('td', { class: 'num' }, String(index)),
          el('td', {}, t.label || ''),
          el('td', {}, badge(state)),
          el('td', { class: 'num' }, t.objective_value !== undefined ? fmt(t.objective_value, 4) : ''),
          el('td', { class: 'num' }, final.val_loss !== undefined ? fmt(final.val_loss, 4) : ''),
          el('td', { class: 'num' }, final.val_accuracy !== undefined ? fmt(final.val_accuracy, 4) : ''),
          el('td', { class: 'num' }, t.steps !== undefined ? String(t.steps) : ''),
          el('td', { class: 'num' }, t.train_seconds !== undefined ? fmt(t.train_seconds) : ''),
          el('td', { class: t.failure ? 'error' : 'muted' }, note));
        }));
        redraw();
      },
    };
    return view;
  }

  // --------------------------------------------------------------- routing

  async function route() {
    for (const stop of teardown) stop();
    teardown = [];
    // A token in the fragment (`lrtune range-test --ui` prints one) moves
    // into sessionStorage and out of the address bar and history.
    const hash = location.hash || '#/';
    const q = hash.indexOf('?');
    if (q >= 0) {
      const params = new URLSearchParams(hash.slice(q + 1));
      if (params.get('token')) sessionStorage.setItem(TOKEN_KEY, params.get('token'));
      history.replaceState(null, '', location.pathname + hash.slice(0, q));
    }
    if (!(await loadWho())) return;
    const path = (location.hash || '#/').replace(/^#/, '').split('?')[0];
    const match = path.match(/^\/jobs\/([A-Za-z0-9_-]{1,64})$/);
    if (match) viewJob(match[1]); else viewJobs();
  }

  document.getElementById('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById('who').textContent = '';
    route();
  });
  window.addEventListener('hashchange', route);
  if (typeof Chart === 'undefined') {
    main(el('p', { class: 'error' }, 'The chart library did not load (/static/chart.js).'));
  } else {
    route();
  }
})();
