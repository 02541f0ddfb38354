'use strict';
// The occopus dashboard: loaded by the sign-in page once the token is known.
// Views (by the URL's fragment, so the back button works):
//   #/            the infrastructures
//   #/new         posting a description, validated first
//   #/infra/ID    one infrastructure, live through its event stream
// Every request carries the token as a bearer token; a 401 signs out.
(() => {
  const TOKEN = 'occopus-token';
  const MESSAGE = 'occopus-sign-in-message';
  const token = sessionStorage.getItem(TOKEN);
  const main = document.getElementById('main');
  const statusLine = document.getElementById('status');

  // What is drawn, and how far behind the events the drawing is (read by
  // the browser tests).
  const stats = { events: 0, lastEventAt: 0, drawnAt: 0, draws: 0, drawnEvents: 0, lagMs: null };
  window.occopusDashboard = stats;

  // ---- small helpers ----------------------------------------------------

  /** An element: `h('a', {href: '#/', class: 'x', onclick: f}, child, ...)`. */
  function h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
      else if (value === true) element.setAttribute(name, '');
      else element.setAttribute(name, String(value));
    }
    element.append(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
    return element;
  }

  /** An SVG element. */
  function s(tag, attributes, ...children) {
    const element = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) element.setAttribute(name, String(value));
    }
    element.append(...children.flat().filter((c) => c !== undefined && c !== null));
    return element;
  }

  function announce(text) {
    statusLine.textContent = '';
    // A change of text is what screen readers announce.
    requestAnimationFrame(() => { statusLine.textContent = text; });
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN);
    if (message) sessionStorage.setItem(MESSAGE, message);
    location.hash = '';
    location.reload();
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || ('HTTP ' + status));
      this.status = status;
      this.body = body;
    }
  }

  /** A request to the service; JSON in, JSON out; a 401 signs out. */
  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + token };
    if (body !== undefined) headers['Content-Type'] = 'application/yaml';
    const response = await fetch(path, { method, headers, body, cache: 'no-store', signal: view.abort.signal });
    if (response.status === 401) {
      signOut('The service no longer accepts this token. Sign in again.');
      throw new ApiError(401, null);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { message: text }; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /**
   * The infrastructure's Server-Sent Events, read with fetch (EventSource
   * cannot send the bearer token). Calls `onEvent(name, data)` per event;
   * resolves when the stream ends.
   */
  async function eventStream(path, onEvent) {
    const response = await fetch(path, {
      headers: { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' },
      cache: 'no-store',
      signal: view.abort.signal,
    });
    if (response.status === 401) return signOut('The service no longer accepts this token. Sign in again.');
    if (!response.ok || !response.body) throw new ApiError(response.status, null);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = 'message';
        const data = [];
        for (const line of frame.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) {
          let parsed = null;
          try { parsed = JSON.parse(data.join('\n')); } catch (_) { continue; }
          onEvent(name, parsed);
        }
      }
    }
  }

  function describeError(error) {
    if (error.name === 'AbortError') return null;
    return error.message || String(error);
  }

  // ---- the page's frame and the router -----------------------------------

  const signOutButton = document.getElementById('sign-out');
  signOutButton.hidden = false;
  signOutButton.addEventListener('click', () => signOut('Signed out.'));
  const bar = document.querySelector('.bar');
  bar.insertBefore(
    h('nav', { 'aria-label': 'Main' },
      h('a', { href: '#/' }, 'Infrastructures'), ' · ',
      h('a', { href: '#/new' }, 'New infrastructure')),
    bar.querySelector('.grow'));

  /** What the current view holds: its requests, timers and drawing. */
  let view = { abort: new AbortController(), timers: [], cleanup: [] };

  function leaveView() {
    view.abort.abort();
    view.timers.forEach(clearInterval);
    view.cleanup.forEach((f) => f());
    view = { abort: new AbortController(), timers: [], cleanup: [] };
  }

  function show(title, ...content) {
    const heading = h('h2', { tabindex: '-1', id: 'view-title' }, title);
    main.replaceChildren(heading, ...content);
    heading.focus();
    document.title = title + ' · occopus';
  }

  function route() {
    leaveView();
    const hash = location.hash || '#/';
    const infra = hash.match(/^#\/infra\/([^/]+)$/);
    if (infra) return infraView(decodeURIComponent(infra[1]));
    if (hash === '#/new') return newView();
    return listView();
  }

  // ---- #/ : the infrastructures ------------------------------------------

  function listView() {
    const body = h('tbody');
    const empty = h('p', { hidden: true }, 'No infrastructure is recorded yet. ', h('a', { href: '#/new' }, 'Post one.'));
    const failure = h('p', { class: 'error', role: 'alert' });
    const table = h('div', { class: 'scroll', hidden: true },
      h('table', { id: 'infrastructures' },
        h('caption', { class: 'visually-hidden' }, 'Infrastructures recorded in the state database'),
        h('thead', {}, h('tr', {},
          ['Name', 'Id', 'State', 'Instances up', 'Lease holder', 'Maintained by the service'].map((t) => h('th', { scope: 'col' }, t)))),
        body));
    show('Infrastructures',
      h('p', {}, h('a', { href: '#/new', class: 'button' }, 'New infrastructure')),
      failure, empty, table);
    const load = async () => {
      try {
        const overview = await api('GET', '/overview');
        failure.textContent = '';
        empty.hidden = overview.infrastructures.length > 0;
        table.hidden = !empty.hidden;
        body.replaceChildren(...overview.infrastructures.map((infra) => h('tr', { 'data-infra': infra.id },
          h('td', {}, h('a', { href: '#/infra/' + encodeURIComponent(infra.id) }, infra.name)),
          h('td', { class: 'mono' }, infra.id),
          h('td', {}, badge(infra.status)),
          h('td', {}, `${infra.instances.ready}/${infra.instances.total}`),
          h('td', {}, infra.lease ? `${infra.lease.command} on ${infra.lease.host} (pid ${infra.lease.pid})` : '—'),
          h('td', {}, infra.managed ? 'yes' : 'no'))));
      } catch (error) {
        const message = describeError(error);
        if (message) failure.textContent = 'Cannot list the infrastructures: ' + message;
      }
    };
    load();
    // The list is a summary: refreshed every 5 s (one infrastructure's page
    // is live through its event stream instead).
    view.timers.push(setInterval(load, 5000));
  }

  function badge(state) {
    return h('span', { class: 'badge state-' + state }, state);
  }

  // ---- #/new : posting a description --------------------------------------

  /** A YAML editor with line numbers whose problem lines are marked. */
  function editor(id, label, placeholder) {
    const gutter = h('ol', { class: 'gutter', 'aria-hidden': 'true' });
    const text = h('textarea', {
      id, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', rows: 18, placeholder,
      'aria-describedby': id + '-problems',
    });
    const problems = h('ul', { id: id + '-problems', class: 'problems', role: 'alert' });
    const file = h('input', { type: 'file', id: id + '-file', accept: '.yaml,.yml,text/yaml,text/plain' });
    let marked = new Map();
    const renumber = () => {
      const lines = text.value.split('\n').length;
      gutter.replaceChildren(...Array.from({ length: lines }, (_, i) => {
        const problem = marked.get(i + 1);
        return h('li', { class: problem ? (problem.severity === 'error' ? 'bad' : 'warn') : null, title: problem ? problem.message : null }, String(i + 1));
      }));
      gutter.scrollTop = text.scrollTop;
    };
    text.addEventListener('input', () => { marked = new Map(); problems.replaceChildren(); text.removeAttribute('aria-invalid'); renumber(); });
    text.addEventListener('scroll', () => { gutter.scrollTop = text.scrollTop; });
    file.addEventListener('change', async () => {
      if (!file.files.length) return;
      text.value = await file.files[0].text();
      text.dispatchEvent(new Event('input'));
      announce('Loaded ' + file.files[0].name);
    });
    renumber();
    const goToLine = (line) => {
      const lines = text.value.split('\n');
      const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      text.focus();
      text.setSelectionRange(start, start + (lines[line - 1] || '').length);
    };
    return {
      text,
      element: h('div', { class: 'field' },
        h('label', { for: id }, label),
        h('div', { class: 'editor' }, gutter, text),
        h('label', { for: id + '-file', class: 'upload' }, 'or upload a file: ', file),
        problems),
      /** Shows the problems of a 400 answer; those of this text mark their lines. */
      showProblems(details) {
        marked = new Map();
        const items = (details || []).map((problem) => {
          // Problems of other files (node definitions, imports) are listed, not marked.
          const here = problem.line && (!problem.file || problem.file === '<posted description>');
          const severity = problem.severity === 'warning' ? 'warning' : 'error';
          // An error marks its line; a warning marks one no error marks.
          if (here && (severity === 'error' || !marked.has(problem.line))) {
            marked.set(problem.line, { severity, message: problem.message });
          }
          const where = problem.location ? problem.location + ': ' : '';
          const text = `${where}${problem.severity || 'error'}: ${problem.message}` + (problem.help ? ` (${problem.help})` : '');
          return h('li', { class: problem.severity === 'warning' ? 'warning' : 'error' },
            here ? h('button', { type: 'button', class: 'link', onclick: () => goToLine(problem.line) }, text) : text);
        });
        problems.replaceChildren(...items);
        const errors = [...marked.values()].some((p) => p.severity === 'error');
        text.setAttribute('aria-invalid', errors ? 'true' : 'false');
        renumber();
      },
      clearProblems() { marked = new Map(); problems.replaceChildren(); text.removeAttribute('aria-invalid'); renumber(); },
    };
  }

  function newView() {
    const description = editor('description', 'Infrastructure description (YAML)', 'infra_name: ...\nnodes:\n  - name: ...');
    const result = h('p', { role: 'status', id: 'validation' });
    const validate = async () => {
      result.textContent = 'Validating…';
      try {
        const answer = await api('POST', '/check', description.text.value);
        description.showProblems(answer.problems);
        const errors = answer.problems.filter((p) => p.severity !== 'warning').length;
        const warnings = answer.problems.length - errors;
        result.textContent = answer.valid
          ? (warnings ? `Valid, with ${warnings} warning(s).` : 'Valid.')
          : `Not valid: ${errors} problem(s), marked in the editor.`;
        return answer.valid;
      } catch (error) {
        result.textContent = 'Cannot validate: ' + describeError(error);
        return false;
      }
    };
    const build = async () => {
      if (!(await validate())) return;
      try {
        const answer = await api('POST', '/infrastructures/', description.text.value);
        announce('Building ' + answer.infraid);
        location.hash = '#/infra/' + encodeURIComponent(answer.infraid);
      } catch (error) {
        result.textContent = 'Cannot build: ' + describeError(error);
      }
    };
    show('New infrastructure',
      h('p', {}, 'Paste or upload an Occopus infrastructure description. It is validated before anything is built; node definitions come from the service\'s import directory or from earlier imports.'),
      description.element,
      h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'validate', onclick: validate }, 'Validate'),
        h('button', { type: 'button', id: 'build', onclick: build }, 'Build')),
      result);
  }

  // ---- #/infra/ID : one infrastructure, live -------------------------------

  const PHASES = ['waiting', 'creating', 'pending', 'checking', 'ready', 'failed', 'stopped', 'destroying', 'destroyed'];
  /** An instance record's state as the phase the events name. */
  const RECORD_PHASE = { creating: 'creating', pending: 'pending', running: 'checking', ready: 'ready', failed: 'failed', destroying: 'destroying' };

  function infraView(id) {
    const model = { id, detail: null, instances: new Map(), ended: null, destroyed: false };
    const title = h('span', {}, id);
    const state = h('span', { id: 'infra-state' });
    const lease = h('p', { id: 'lease' });
    const failure = h('p', { class: 'error', role: 'alert' });
    const graph = h('div', { id: 'graph', class: 'scroll' });
    const timeline = h('div', { id: 'timeline', class: 'scroll' });
    const table = h('tbody');
    const scaling = h('div', { id: 'scaling' });
    const plan = editor('changed', 'Changed description (YAML)', 'the infrastructure\'s description, changed');
    const planOutput = h('pre', { id: 'plan-output', tabindex: '0', hidden: true });
    const ended = h('p', { id: 'ended', role: 'status' });

    const heading = h('h2', { tabindex: '-1', id: 'view-title' }, title, ' ', state);
    main.replaceChildren(
      h('p', {}, h('a', { href: '#/' }, '← Infrastructures')),
      heading, lease, failure, ended,
      h('section', { 'aria-labelledby': 'graph-title' }, h('h3', { id: 'graph-title' }, 'Nodes and dependencies'), graph, legend()),
      h('section', { 'aria-labelledby': 'timeline-title' }, h('h3', { id: 'timeline-title' }, 'Timeline'), timeline),
      h('section', { 'aria-labelledby': 'instances-title' },
        h('h3', { id: 'instances-title' }, 'Instances'),
        h('div', { class: 'scroll' }, h('table', { id: 'instances' },
          h('thead', {}, h('tr', {}, ['Node', 'Instance', 'State', 'Address', 'Private address', 'Health', 'Cloud id', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
          table))),
      h('section', { 'aria-labelledby': 'scaling-title' }, h('h3', { id: 'scaling-title' }, 'Scaling'), scaling),
      h('section', { 'aria-labelledby': 'plan-title' },
        h('h3', { id: 'plan-title' }, 'Plan a change'),
        h('p', {}, 'What building a changed description would do to this infrastructure, without doing it.'),
        plan.element,
        h('div', { class: 'actions' }, h('button', { type: 'button', id: 'show-plan', onclick: showPlan }, 'Show the plan')),
        planOutput),
      h('section', { 'aria-labelledby': 'destroy-title', class: 'danger' },
        h('h3', { id: 'destroy-title' }, 'Destroy'),
        h('p', {}, 'Deletes every instance of this infrastructure in its clouds.'),
        h('button', { type: 'button', id: 'destroy', class: 'danger', onclick: confirmDestroy }, 'Destroy…')));
    heading.focus();
    document.title = id + ' · occopus';

    async function loadDetail() {
      try {
        model.detail = await api('GET', '/infrastructures/' + encodeURIComponent(id) + '/detail');
        failure.textContent = '';
        for (const instance of model.detail.instances) {
          const known = model.instances.get(instance.id);
          const phase = RECORD_PHASE[instance.state] || instance.state;
          if (!known) {
            // Seen before this page: one span from its record, up to its last change.
            model.instances.set(instance.id, {
              id: instance.id, node: instance.node, phase, record: instance,
              spans: [{ phase, start: instance.created_ms, end: null }],
            });
          } else {
            known.record = instance;
            // A change the stream did not bring (it opened after it): the
            // record's state, from its last change.
            const last = known.spans[known.spans.length - 1];
            if (phase !== known.phase && (!last || instance.updated_ms > last.start)) {
              if (last && last.end === null) last.end = instance.updated_ms;
              known.phase = phase;
              known.spans.push({ phase, start: instance.updated_ms, end: null });
            }
          }
        }
        draw();
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          model.destroyed = true;
          ended.textContent = 'Destroyed: this infrastructure is no longer recorded.';
          draw();
          return;
        }
        const message = describeError(error);
        if (message) failure.textContent = 'Cannot read the infrastructure: ' + message;
      }
    }

    // Detail (addresses, health, targets) is re-read after events, at most
    // once a second: the events say what changed, the detail what it is now.
    let detailDue = null;
    function refreshSoon() {
      if (detailDue) return;
      detailDue = setTimeout(() => { detailDue = null; loadDetail(); }, 1000);
    }
    view.cleanup.push(() => clearTimeout(detailDue));

    function onEvent(name, data) {
      stats.events += 1;
      stats.lastEventAt = performance.now();
      if (data.instance_id) {
        let instance = model.instances.get(data.instance_id);
        if (!instance) {
          instance = { id: data.instance_id, node: data.node, phase: data.phase, record: null, spans: [] };
          model.instances.set(data.instance_id, instance);
        }
        const last = instance.spans[instance.spans.length - 1];
        if (last && last.end === null) last.end = data.time_ms;
        instance.phase = data.phase;
        instance.detail = data.detail;
        const final = data.phase === 'destroyed';
        instance.spans.push({ phase: data.phase, start: data.time_ms, end: final ? data.time_ms : null });
      } else {
        model.ended = { name, detail: data.detail };
        ended.textContent = ({
          'infra-built': 'Built.', 'infra-failed': 'The build failed: ', 'infra-stopped': 'Stopped: ',
          'infra-destroy-failed': 'The destroy failed: ', 'infra-destroyed': 'Destroyed.',
        }[name] || name + ': ') + (name === 'infra-built' || name === 'infra-destroyed' ? '' : (data.detail || ''));
        announce(ended.textContent);
        if (name === 'infra-destroyed') model.destroyed = true;
      }
      scheduleDraw();
      refreshSoon();
    }

    let drawPending = false;
    function scheduleDraw() {
      if (drawPending) return;
      drawPending = true;
      requestAnimationFrame(() => { drawPending = false; draw(); });
    }

    function draw() {
      const detail = model.detail;
      if (detail) {
        title.textContent = detail.name || id;
        state.replaceChildren(badge(model.destroyed ? 'destroyed' : detail.status));
        lease.textContent = detail.lease
          ? `Being changed by ${detail.lease.command} on ${detail.lease.host} (pid ${detail.lease.pid}).`
          : 'No command is changing it.';
        graph.replaceChildren(drawGraph(detail.nodes, model.instances));
        drawScaling(detail.nodes);
      }
      timeline.replaceChildren(drawTimeline(model.instances));
      table.replaceChildren(...instanceRows());
      stats.drawnAt = performance.now();
      stats.draws += 1;
      if (stats.drawnEvents !== stats.events) {
        // How long the newest event waited to be drawn.
        stats.drawnEvents = stats.events;
        stats.lagMs = stats.drawnAt - stats.lastEventAt;
      }
      document.getElementById('destroy').disabled = model.destroyed;
    }

    function instanceRows() {
      const rows = [...model.instances.values()].sort(byNodeThenStart);
      return rows.map((instance) => {
        const record = instance.record || {};
        const health = record.health || {};
        return h('tr', { 'data-instance': instance.id, 'data-phase': instance.phase },
          h('td', {}, instance.node),
          h('td', { class: 'mono' }, instance.id),
          h('td', {}, badge(instance.phase)),
          h('td', { class: 'mono' }, record.resource_address || ''),
          h('td', { class: 'mono' }, record.private_address || ''),
          h('td', {}, health.status ? `${health.status}${health.detail ? ': ' + health.detail : ''}` : ''),
          h('td', { class: 'mono' }, record.cloud_id || ''),
          h('td', { class: 'error-text' }, record.error || (instance.phase === 'failed' ? instance.detail || '' : '')));
      });
    }

    // The scaling controls are made once and updated in place, so that a
    // redraw never takes the keyboard focus away from a button.
    const scalingRows = new Map();
    function drawScaling(nodes) {
      if (!scalingRows.size) {
        const rows = nodes.map((node) => {
          const cells = {
            live: h('td', {}), target: h('td', {}),
            down: h('button', { type: 'button', class: 'small', 'aria-label': `Remove an instance of ${node.name}`, onclick: () => scale(node.name, 'scaledown') }, '−'),
            up: h('button', { type: 'button', class: 'small', 'aria-label': `Add an instance of ${node.name}`, onclick: () => scale(node.name, 'scaleup') }, '+'),
          };
          scalingRows.set(node.name, cells);
          return h('tr', { 'data-node': node.name },
            h('td', {}, node.name), cells.live, cells.target,
            h('td', {}, `${node.scaling.min}–${node.scaling.max}`),
            h('td', {}, h('span', { class: 'actions' }, cells.down, cells.up)));
        });
        scaling.replaceChildren(h('table', { class: 'scaling' },
          h('thead', {}, h('tr', {}, ['Node', 'Instances', 'Target', 'Limits', 'Change'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, rows)));
      }
      for (const node of nodes) {
        const cells = scalingRows.get(node.name);
        if (!cells) continue;
        const live = [...model.instances.values()].filter((i) => i.node === node.name && !['destroyed', 'destroying'].includes(i.phase)).length;
        cells.live.textContent = String(live);
        cells.target.textContent = String(node.scaling.target);
        cells.down.disabled = model.destroyed || node.scaling.target <= node.scaling.min;
        cells.up.disabled = model.destroyed || node.scaling.target >= node.scaling.max;
      }
    }

    async function scale(node, method) {
      try {
        await api('POST', `/infrastructures/${encodeURIComponent(id)}/${method}/${encodeURIComponent(node)}`);
        announce(`${method === 'scaleup' ? 'Adding an instance of' : 'Removing an instance of'} ${node}: queued for the next maintenance pass.`);
        loadDetail();
      } catch (error) {
        failure.textContent = 'Cannot scale: ' + describeError(error);
      }
    }

    async function showPlan() {
      try {
        const answer = await api('POST', `/infrastructures/${encodeURIComponent(id)}/plan`, plan.text.value);
        if (!answer.valid) {
          plan.showProblems(answer.problems);
          planOutput.hidden = true;
          announce('The changed description has problems, marked in the editor.');
          return;
        }
        plan.clearProblems();
        planOutput.hidden = false;
        planOutput.textContent = answer.text || 'Nothing would change.';
        announce('Plan ready.');
      } catch (error) {
        failure.textContent = 'Cannot plan: ' + describeError(error);
      }
    }

    function confirmDestroy() {
      const name = (model.detail && model.detail.name) || id;
      const dialog = h('dialog', { id: 'confirm-destroy', 'aria-labelledby': 'confirm-title' },
        h('h3', { id: 'confirm-title' }, `Destroy ${name}?`),
        h('p', {}, `All ${model.instances.size} instance(s) of ${name} (${id}) will be deleted in their clouds. This cannot be undone.`),
        h('div', { class: 'actions' },
          h('button', { type: 'button', id: 'cancel-destroy', autofocus: true, onclick: () => dialog.close('cancel') }, 'Cancel'),
          h('button', { type: 'button', id: 'confirm-destroy-button', class: 'danger', onclick: () => dialog.close('destroy') }, 'Destroy')));
      dialog.addEventListener('close', async () => {
        dialog.remove();
        if (dialog.returnValue !== 'destroy') return;
        try {
          await api('DELETE', '/infrastructures/' + encodeURIComponent(id));
          announce('Destroying ' + name);
        } catch (error) {
          failure.textContent = 'Cannot destroy: ' + describeError(error);
        }
      });
      document.body.append(dialog);
      dialog.showModal();
    }

    // The stream first, so that no change between the two reads is missed.
    eventStream(`/infrastructures/${encodeURIComponent(id)}/events`, onEvent)
      .catch((error) => {
        const message = describeError(error);
        if (message && !model.destroyed) failure.textContent = 'The event stream ended: ' + message;
      });
    loadDetail();
  }

  function byNodeThenStart(a, b) {
    const start = (i) => (i.spans[0] ? i.spans[0].start : 0);
    return a.node.localeCompare(b.node) || start(a) - start(b) || a.id.localeCompare(b.id);
  }

  function legend() {
    return h('ul', { class: 'legend', 'aria-label': 'Colours' },
      PHASES.map((phase) => h('li', {}, h('span', { class: 'swatch phase-' + phase }), phase)));
  }

  /** A node's state from its instances: failed, ready, busy or waiting. */
  function nodeState(node, instances) {
    const own = [...instances.values()].filter((i) => i.node === node.name && i.phase !== 'destroyed');
    const ready = own.filter((i) => i.phase === 'ready').length;
    if (own.some((i) => i.phase === 'failed')) return { phase: 'failed', ready, total: own.length };
    if (own.length && ready === own.length && ready >= node.scaling.target) return { phase: 'ready', ready, total: own.length };
    const busy = own.find((i) => ['creating', 'pending', 'checking', 'destroying'].includes(i.phase));
    return { phase: busy ? busy.phase : 'waiting', ready, total: own.length };
  }

  /** The dependency graph: a column per depth, arrows to what a node needs. */
  function drawGraph(nodes, instances) {
    // Accepted, not recorded yet: its build has not read its nodes.
    if (!nodes.length) return h('p', {}, 'Waiting for the build to read the description…');
    const depth = new Map();
    const byName = new Map(nodes.map((n) => [n.name, n]));
    const depthOf = (name, seen = new Set()) => {
      if (depth.has(name)) return depth.get(name);
      if (seen.has(name)) return 0;
      seen.add(name);
      const node = byName.get(name);
      const d = node && node.depends_on.length ? 1 + Math.max(...node.depends_on.map((n) => depthOf(n, seen))) : 0;
      depth.set(name, d);
      return d;
    };
    nodes.forEach((n) => depthOf(n.name));
    const columns = [];
    for (const node of nodes) (columns[depth.get(node.name)] ||= []).push(node);
    const W = 170, H = 56, GX = 70, GY = 24, PAD = 12;
    const place = new Map();
    columns.forEach((column, x) => column.forEach((node, y) => place.set(node.name, { x: PAD + x * (W + GX), y: PAD + y * (H + GY) })));
    const width = PAD * 2 + columns.length * (W + GX) - GX;
    const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY) - GY;
    const summary = nodes.map((n) => {
      const st = nodeState(n, instances);
      return `${n.name}: ${st.phase}, ${st.ready} of ${st.total} ready` + (n.depends_on.length ? `, needs ${n.depends_on.join(' and ')}` : '');
    }).join('; ');
    const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'Dependency graph. ' + summary },
      s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow-head' }))));
    for (const node of nodes) {
      const from = place.get(node.name);
      for (const need of node.depends_on) {
        const to = place.get(need);
        if (!to) continue;
        svg.append(s('line', { x1: from.x, y1: from.y + H / 2, x2: to.x + W, y2: to.y + H / 2, class: 'edge', 'marker-end': 'url(#arrow)' }));
      }
    }
    for (const node of nodes) {
      const at = place.get(node.name);
      const st = nodeState(node, instances);
      svg.append(s('g', { class: 'graph-node phase-' + st.phase, 'data-node': node.name, 'data-phase': st.phase },
        s('rect', { x: at.x, y: at.y, width: W, height: H, rx: 8 }),
        s('text', { x: at.x + 10, y: at.y + 22, class: 'name' }, node.name),
        s('text', { x: at.x + 10, y: at.y + 42 }, `${st.phase} · ${st.ready}/${st.total} ready`)));
    }
    return svg;
  }

  /** The timeline: a row per instance, a bar per phase it went through. */
  function drawTimeline(instances) {
    const rows = [...instances.values()].sort(byNodeThenStart);
    const now = Date.now();
    const starts = rows.flatMap((r) => r.spans.map((sp) => sp.start)).filter(Number.isFinite);
    if (!rows.length || !starts.length) return h('p', {}, 'No instance yet.');
    const t0 = Math.min(...starts);
    const t1 = Math.max(now, t0 + 1000);
    const LABEL = 190, ROW = 16, WIDTH = 900, AXIS = 22;
    const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * (WIDTH - LABEL - 32);
    const height = AXIS + rows.length * ROW + 4;
    const svg = s('svg', { width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, role: 'img',
      'aria-label': `Timeline of ${rows.length} instance(s) over ${Math.round((t1 - t0) / 1000)} seconds; the instances table lists their states.` });
    const seconds = (t1 - t0) / 1000;
    const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600].find((st) => seconds / st <= 8) || 7200;
    for (let t = 0; t <= seconds; t += step) {
      svg.append(s('line', { x1: x(t0 + t * 1000), x2: x(t0 + t * 1000), y1: AXIS - 6, y2: height, class: 'tick' }),
        s('text', { x: x(t0 + t * 1000) + 2, y: AXIS - 8, class: 'axis' }, `${t}s`));
    }
    rows.forEach((row, i) => {
      const y = AXIS + i * ROW;
      svg.append(s('text', { x: 4, y: y + ROW - 4, class: 'label' }, `${row.node} ${row.id.slice(0, 18)}`));
      for (const span of row.spans) {
        const end = span.end === null ? now : span.end;
        const w = Math.max(2, x(end) - x(span.start));
        svg.append(s('rect', { x: x(span.start), y: y + 2, width: w, height: ROW - 4, class: 'phase-' + span.phase, 'data-phase': span.phase },
          s('title', {}, `${row.node} ${row.id}: ${span.phase} for ${((end - span.start) / 1000).toFixed(1)} s`)));
      }
    });
    return svg;
  }

  window.addEventListener('hashchange', route);
  route();
})();
