// The status page's stylesheet and script, shipped inside the binary (no CDN, no build step).
// `/status.js` polls `/status.json` every second, keeps the 1-second series it returns (and the
// 1-minute ones from `/status/history.json` in the 24-hour view), re-renders the tables the
// server rendered (StatusPage.swift) with the same markup, draws one row of small SVG charts
// per service and backend, shows a point's time and value on hover, says when the instance
// stops answering, and sends actions when the page offers them.

extension StatusPage {
    public static let stylesheet = #"""
        :root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --idle: #57606a; --line: #d0d7de; }
        * { box-sizing: border-box; }
        body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5rem 2rem; color: #1f2328; background: #fff; }
        header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 1rem; border-bottom: 1px solid var(--line); }
        h1 { font-size: 1.3rem; margin: .6rem 0; } h2 { font-size: 1.1rem; margin: 1.2rem 0 .4rem; }
        #process { color: var(--idle); margin: 0; flex: 1; }
        .live { margin: 0; padding: .1rem .5rem; border-radius: 3px; background: #dafbe1; color: var(--ok); }
        .live.stale { background: #ffebe9; color: var(--bad); font-weight: 600; }
        body.stale main { opacity: .55; }
        table { border-collapse: collapse; margin: .3rem 0; }
        th, td { border: 1px solid var(--line); padding: .2rem .5rem; text-align: left; white-space: nowrap; }
        th { background: #f6f8fa; font-weight: 600; }
        td.check { white-space: normal; max-width: 26rem; color: var(--idle); }
        .badge { display: inline-block; padding: 0 .45rem; border-radius: 3px; font-weight: 600; }
        .badge.ready, .badge.up { background: #dafbe1; color: var(--ok); }
        .badge.drain { background: #fff8c5; color: var(--warn); }
        .badge.maint { background: #eaeef2; color: var(--idle); }
        .badge.down { background: #ffebe9; color: var(--bad); }
        tr.health-down td:first-child { border-left: 4px solid var(--bad); }
        tr.state-drain td:first-child { border-left: 4px solid var(--warn); }
        tr.state-maint td:first-child { border-left: 4px solid var(--idle); }
        .charts { display: flex; flex-wrap: wrap; gap: .6rem; margin: .3rem 0; }
        tr.charts-row td { border-top: none; padding: 0 .5rem .3rem; }
        figure { margin: 0; } figcaption { font-size: 11px; color: var(--idle); }
        svg.chart { display: block; width: 200px; height: 44px; background: #f6f8fa; border: 1px solid var(--line); }
        svg.chart polyline { fill: none; stroke-width: 1.5; }
        svg.chart .s0 { stroke: #0969da; } svg.chart .s1 { stroke: #8250df; }
        svg.chart .errors { stroke: var(--bad); }
        #tip { position: fixed; pointer-events: none; background: #1f2328; color: #fff; padding: .2rem .4rem; border-radius: 3px; font-size: 12px; white-space: pre; }
        #admin-bar { margin: .6rem 0; color: var(--idle); } #admin-bar input { margin: 0 .5rem; }
        #message.ok { color: var(--ok); } #message.error { color: var(--bad); } #message { white-space: pre-wrap; min-height: 1.2em; margin: .3rem 0; }
        .range button[aria-pressed="true"] { font-weight: 700; }
        td.actions button { margin-right: .2rem; } td.actions input { width: 3.5rem; }
        """#

    public static let script = #"""
        (() => {
          'use strict';
          const body = document.body, main = document.getElementById('services');
          const live = document.getElementById('live'), message = document.getElementById('message');
          const tip = document.getElementById('tip'), tokenInput = document.getElementById('token');
          const csrf = body.dataset.csrf;
          const charts = [
            { title: 'connections/s', fields: [0], unit: '' },
            { title: 'bytes/s in, out', fields: [1, 2], unit: 'B', bytes: true },
            { title: 'connect p99 ms', fields: [3], unit: ' ms' },
            { title: 'errors/s', fields: [4], unit: '', errors: true },
          ];
          const series = new Map();
          let resolution = 1, since = 0, lastAnswer = Date.now(), data = null, minuteTimer = null;
          const keyOf = (service, backend) => service + '|' + (backend || '');
          const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
          const clock = (t) => new Date(t * 1000).toLocaleTimeString();
          function scaled(v, units, step) {
            if (v == null) return '-';
            let u = 0; while (v >= step && u < units.length - 1) { v /= step; u++; }
            return (v >= 100 || (u === 0 && Number.isInteger(v)) ? Math.round(v) : v.toFixed(1)) + units[u];
          }
          const num = (v) => scaled(v, ['', 'k', 'M', 'G'], 1000);
          const bytes = (v) => scaled(v, [' B', ' KiB', ' MiB', ' GiB', ' TiB'], 1024);
          const ms = (v) => v == null ? '-' : (v < 10 ? v.toFixed(3) : Math.round(v)) + ' ms';
          function duration(s) {
            if (s < 60) return s + 's'; if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
            if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor(s % 3600 / 60) + 'm';
            return Math.floor(s / 86400) + 'd ' + Math.floor(s % 86400 / 3600) + 'h';
          }

          async function getJSON(url) {
            const abort = new AbortController();
            const timer = setTimeout(() => abort.abort(), 3000);
            try {
              const answer = await fetch(url, { signal: abort.signal, cache: 'no-store' });
              if (!answer.ok) throw new Error('HTTP ' + answer.status);
              return await answer.json();
            } finally { clearTimeout(timer); }
          }

          function merge(history, replace) {
            if (replace) series.clear();
            const keep = history.resolution_seconds === 60 ? 1441 : 900;
            for (const subject of history.subjects) {
              const key = keyOf(subject.service, subject.backend);
              let points = series.get(key);
              if (!points) { points = []; series.set(key, points); }
              for (const p of subject.points) {
                if (!points.length || p[0] > points[points.length - 1][0]) points.push(p);
                if (history.resolution_seconds === 1) since = Math.max(since, p[0]);
              }
              if (points.length > keep) points.splice(0, points.length - keep);
            }
          }

          async function poll() {
            try {
              const d = await getJSON('/status.json' + (resolution === 1 ? '?since=' + since : ''));
              data = d;
              if (d.history) merge(d.history, false);
              lastAnswer = Date.now();
              body.classList.remove('stale');
              live.className = 'live ok';
              live.textContent = 'live · ' + clock(d.time);
              render();
            } catch (error) {
              body.classList.add('stale');
              live.className = 'live stale';
              live.textContent = 'not answering since ' + new Date(lastAnswer).toLocaleTimeString() + ' (' + (error.name === 'AbortError' ? 'timed out' : error.message) + ')';
            }
            setTimeout(poll, 1000);
          }

          async function loadMinutes() {
            try { merge(await getJSON('/status/history.json?resolution=60'), true); render(); } catch (error) { /* the next poll says so */ }
          }

          function setRange(value) {
            resolution = value;
            clearInterval(minuteTimer);
            series.clear(); since = 0;
            if (value === 60) { loadMinutes(); minuteTimer = setInterval(loadMinutes, 60000); }
            for (const b of document.querySelectorAll('.range button')) b.setAttribute('aria-pressed', String(Number(b.dataset.range) === value));
          }

          function chartsHTML(service, backend) {
            const points = series.get(keyOf(service, backend)) || [];
            return charts.map((chart, index) => {
              let max = 0;
              for (const p of points) for (const f of chart.fields) max = Math.max(max, p[1 + f]);
              const t0 = points.length ? points[0][0] : 0, t1 = points.length ? points[points.length - 1][0] : 1;
              const span = Math.max(t1 - t0, 1), top = max > 0 ? max : 1;
              const lines = chart.fields.map((f, n) => {
                const xy = points.map((p) => ((p[0] - t0) / span * 200).toFixed(1) + ',' + (42 - p[1 + f] / top * 40).toFixed(1)).join(' ');
                return '<polyline class="s' + n + (chart.errors ? ' errors' : '') + '" points="' + xy + '"></polyline>';
              }).join('');
              const peak = chart.bytes ? bytes(max) + '/s' : chart.unit === ' ms' ? ms(max) : num(max);
              return '<figure><svg class="chart" viewBox="0 0 200 44" preserveAspectRatio="none" data-service="' + esc(service) + '" data-backend="' + esc(backend || '') +
                '" data-chart="' + index + '" data-points="' + points.length + '" role="img" aria-label="' + esc(chart.title) + '">' + lines + '</svg>' +
                '<figcaption>' + esc(chart.title) + ' · peak ' + esc(peak) + '</figcaption></figure>';
            }).join('');
          }

          function render() {
            if (!data) return;
            const p = data.process;
            let text = 'version ' + p.version + ' (' + p.commit + ') · pid ' + p.pid + ' · up ' + duration(p.uptime_seconds) + ' · ' + p.workers + ' workers · relay ' + p.relay + ' · ' + p.open_connections + ' open';
            if (p.rss_bytes != null) text += ' · RSS ' + bytes(p.rss_bytes) + ' · ' + p.open_fds + '/' + p.max_fds + ' descriptors';
            document.getElementById('process').textContent = text;
            const admin = data.admin.enabled;
            const typed = new Map();
            for (const input of main.querySelectorAll('input.weight')) typed.set(input.dataset.key, input.value);
            const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
            let html = '<p class="range">history: <button type="button" data-range="1" aria-pressed="' + (resolution === 1) + '">15 minutes (1 s)</button> ' +
              '<button type="button" data-range="60" aria-pressed="' + (resolution === 60) + '">24 hours (1 min)</button></p>';
            for (const s of data.services) {
              const r = s.rates || {};
              const refused = Object.values(s.refusals).reduce((a, b) => a + b, 0);
              const reasons = Object.entries(s.refusals).filter(([, n]) => n > 0).map(([k, n]) => k + ' ' + n).join(', ');
              const tiers = s.tiers.map((t) => 'tier ' + t.tier + ': ' + t.selectable + ' of ' + t.backends + ' up, ' + Math.round(t.share * 100) + '%').join('; ');
              html += '<section class="service" data-service="' + esc(s.name) + '"><h2>' + esc(s.name) + '</h2>' +
                '<table class="summary"><tr><th>Listeners</th><th>Balance</th><th>Tiers</th><th>Open</th><th>Conn/s</th><th>In/s</th><th>Out/s</th><th>Queued</th><th>Refused</th></tr>' +
                '<tr><td>' + esc(s.listen.join(', ')) + '</td><td>' + esc(s.balance) + '</td><td>' + esc(tiers) + '</td><td class="open">' + s.active + '</td>' +
                '<td>' + num(r.conn_per_sec) + '</td><td>' + (r.bytes_in_per_sec == null ? '-' : bytes(r.bytes_in_per_sec) + '/s') + '</td><td>' + (r.bytes_out_per_sec == null ? '-' : bytes(r.bytes_out_per_sec) + '/s') + '</td>' +
                '<td>' + s.queued + '</td><td class="refused" title="' + esc(reasons) + '">' + refused + (reasons ? ' (' + esc(reasons) + ')' : '') + '</td></tr></table>' +
                '<div class="charts">' + chartsHTML(s.name, null) + '</div>' +
                '<table class="backends"><thead><tr><th>Backend</th><th>State</th><th>Health</th><th>Last check</th><th>Weight</th><th>Active</th><th>Conn/s</th><th>Connect p50 / p99</th><th>Failures</th>' + (admin ? '<th>Actions</th>' : '') + '</tr></thead><tbody>';
              for (const b of s.backends) {
                const state = b.state + (b.removing ? ' (removing)' : '');
                const key = s.name + '/' + b.address;
                const weight = b.effective_weight === b.weight ? String(b.weight) : b.effective_weight + ' of ' + b.weight;
                const actions = admin ? '<td class="actions"><button type="button" data-action="drain">drain</button><button type="button" data-action="ready">ready</button>' +
                  '<button type="button" data-action="maint">maint</button><input class="weight" data-key="' + esc(key) + '" type="number" min="0" max="256" value="' + esc(typed.get(key) ?? b.weight) + '">' +
                  '<button type="button" data-action="weight">set weight</button></td>' : '';
                html += '<tr data-service="' + esc(s.name) + '" data-backend="' + esc(b.address) + '" class="state-' + esc(b.state) + ' health-' + esc(b.health) + '">' +
                  '<td>' + esc(b.address) + '</td><td class="state"><span class="badge ' + esc(b.state) + '">' + esc(state) + '</span></td>' +
                  '<td class="health"><span class="badge ' + esc(b.health) + '">' + esc(b.health) + '</span></td><td class="check">' + esc(b.last_check) + '</td>' +
                  '<td class="weight">' + esc(weight) + '</td><td class="active">' + b.active + '</td><td>' + num(b.conn_per_sec) + '</td>' +
                  '<td>' + ms(b.connect_p50_ms) + ' / ' + ms(b.connect_p99_ms) + '</td><td class="failures">' + b.failures + '</td>' + actions + '</tr>' +
                  '<tr class="charts-row"><td colspan="' + (admin ? 10 : 9) + '"><div class="charts">' + chartsHTML(s.name, b.address) + '</div></td></tr>';
              }
              html += '</tbody></table></section>';
            }
            main.innerHTML = html;
            if (focused) { const input = main.querySelector('input.weight[data-key="' + CSS.escape(focused) + '"]'); if (input) input.focus(); }
          }

          main.addEventListener('click', async (event) => {
            const range = event.target.closest('.range button');
            if (range) { setRange(Number(range.dataset.range)); render(); return; }
            const button = event.target.closest('button[data-action]');
            if (!button) return;
            const row = button.closest('tr');
            const form = new URLSearchParams({ backend: row.dataset.service + '/' + row.dataset.backend, action: button.dataset.action });
            if (button.dataset.action === 'weight') form.set('weight', row.querySelector('input.weight').value);
            const token = tokenInput ? tokenInput.value : '';
            if (tokenInput) sessionStorage.setItem('switchyard-token', token);
            try {
              const answer = await fetch('/status/action', {
                method: 'POST', cache: 'no-store',
                headers: { 'Authorization': 'Bearer ' + token, 'X-CSRF-Token': csrf, 'Content-Type': 'application/x-www-form-urlencoded' },
                body: form.toString(),
              });
              const text = (await answer.text()).trim();
              message.className = answer.ok ? 'ok' : 'error';
              message.textContent = (answer.ok ? '' : 'refused (' + answer.status + '): ') + form.get('action') + ' ' + form.get('backend') + ': ' + text;
            } catch (error) {
              message.className = 'error';
              message.textContent = 'could not send the action: ' + error.message;
            }
          });

          main.addEventListener('mousemove', (event) => {
            const svg = event.target.closest('svg.chart');
            if (!svg) { tip.hidden = true; return; }
            const points = series.get(keyOf(svg.dataset.service, svg.dataset.backend)) || [];
            if (!points.length) { tip.hidden = true; return; }
            const box = svg.getBoundingClientRect();
            const t0 = points[0][0], span = Math.max(points[points.length - 1][0] - t0, 1);
            const t = t0 + (event.clientX - box.left) / box.width * span;
            let best = points[0];
            for (const p of points) if (Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
            const chart = charts[Number(svg.dataset.chart)];
            const values = chart.fields.map((f) => chart.bytes ? bytes(best[1 + f]) + '/s' : chart.unit === ' ms' ? ms(best[1 + f]) : num(best[1 + f]));
            tip.textContent = clock(best[0]) + '  ' + chart.title + ': ' + values.join(', ');
            tip.style.left = (event.clientX + 12) + 'px';
            tip.style.top = (event.clientY + 12) + 'px';
            tip.hidden = false;
          });
          main.addEventListener('mouseleave', () => { tip.hidden = true; });

          if (tokenInput) tokenInput.value = sessionStorage.getItem('switchyard-token') || '';
          poll();
        })();
        """#
}
