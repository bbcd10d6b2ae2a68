// Omnivox wallboard: a plain client of the public GraphQL API, with no dependencies.
//
// * Sign-in: the `login` mutation, tokens kept in sessionStorage (this tab only), refreshed with
//   `refreshSession` before the access token expires; or a kiosk URL `/wallboard#token=…` with
//   an access token or an API key (`ovx_…`, scopes `realtime:read` and `kpi:read`): the
//   fragment never leaves the browser, and it is taken out of the address bar at once.
// * Live data over `graphql-transport-ws` on /graphql: `agentStates` (a snapshot, then deltas),
//   `liveKpis`, `businessSettingsChanged` and, for supervisors, `complianceAlerts`. Every
//   (re)connection starts with fresh snapshots, so a gap never leaves stale tiles (resync).
// * The socket reconnects by itself with jittered exponential backoff; a socket that stays
//   silent (no pong, no ping, no data) for 45 s is presumed dead and replaced. A refreshed token
//   opens a second socket and retires the first once the second has its snapshot
//   (make-before-break), so a token refresh leaves no gap on screen.
//
// The body's data attributes (`data-connection`, `data-connects`, `data-refreshes`) expose the
// connection's state to monitoring and to the browser test.
(function () {
  'use strict';

  var PROTOCOL = 'graphql-transport-ws';
  var STORAGE_KEY = 'omnivox.wallboard.session';
  var SILENCE_LIMIT_MS = 45000;
  var CLIENT_PING_MS = 20000;
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;
  // complianceStatus is re-read after an alert or a reconnect (URGENT), after calls changed the
  // live tiles (CALLS: calls of any campaign may move a rate), and every POLL (rolling windows).
  var COMPLIANCE_URGENT_MS = 1000;
  var COMPLIANCE_CALLS_MS = 5000;
  var COMPLIANCE_POLL_MS = 60000;
  var REPLACEMENT_TIMEOUT_MS = 15000;

  var AGENT_STATES = 'subscription { agentStates { kind resync removedAgentIds agents { ' +
    'id name teamId teamName presence presenceReason presenceSince routingState routingSince } } }';
  var LIVE_KPIS = 'subscription($f: LiveKpiFilter) { liveKpis(filter: $f) { timezone ' +
    'serviceLevelThresholdSeconds callsWaiting oldestWaitingSince ' +
    'today { offered answered abandoned serviceLevel averageSpeedOfAnswer abandonRate } } }';
  var SETTINGS = 'subscription { businessSettingsChanged { version serviceLevelTargetPercent ' +
    'serviceLevelThresholdSeconds maxAbandonRatePercent } }';
  var COMPLIANCE_ALERTS = 'subscription { complianceAlerts { campaignId level } }';
  var WHO = 'query { organization { name } me { role } }';
  // An API key is no user: `me` is outside every scope, and the page learns whether outbound
  // compliance is open to it from complianceStatus's own answer.
  var WHO_FOR_KEY = 'query { organization { name } }';
  var API_KEY_PREFIX = 'ovx_';
  var COMPLIANCE_STATUS = 'query { complianceStatus { campaignId campaignName limit status ' +
    'uk { rate limit status } us { rate limit status } } }';
  var LOGIN = 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) ' +
    '{ accessToken refreshToken expiresAt } }';
  var REFRESH = 'mutation($r: String!) { refreshSession(refreshToken: $r) ' +
    '{ accessToken refreshToken expiresAt } }';
  var LOGOUT = 'mutation($r: String!) { logout(refreshToken: $r) }';

  var ROLES = ['VIEWER', 'AGENT', 'SUPERVISOR', 'ADMIN', 'SUPER_ADMIN'];
  var STATE_LABELS = {
    AVAILABLE: 'Available', BREAK: 'Break', LUNCH: 'Lunch', TRAINING: 'Training',
    MEETING: 'Meeting', AWAY: 'Away', OFFLINE: 'Offline',
    RINGING: 'Ringing', ON_CALL: 'On call', WRAP_UP: 'Wrap-up'
  };
  // Grid and legend order: busy first, offline last.
  var STATE_ORDER = ['ON_CALL', 'RINGING', 'WRAP_UP', 'AVAILABLE', 'BREAK', 'LUNCH', 'TRAINING',
    'MEETING', 'AWAY', 'OFFLINE'];

  function $(id) { return document.getElementById(id); }

  // ------------------------------------------------------------------------------------------
  // State

  var session = null;        // {mode: 'password'|'kiosk', accessToken, refreshToken?, expiresAt?}
  var clockOffsetMs = 0;     // server time − local time
  var timezone = null;       // the organization's IANA zone (from liveKpis)
  var role = null;
  var agents = new Map();    // id → AgentStatus
  var cards = new Map();     // id → card element
  var renderedOrder = '';
  var selectedTeam = '';
  var teamsKey = '';
  var kpis = null;
  var kpisStale = true;
  var settings = null;
  var compliance = { allowed: null, rows: null, lastFetch: 0, timer: null, inFlight: false };

  var live = {
    conn: null,        // the connection whose data is on screen
    next: null,        // a replacement being brought up after a token refresh
    attempt: 0,
    retryTimer: null,
    retryAt: 0,
    refusals: 0,       // 4403 closes in a row without an ack in between
    stopped: true,
    connects: 0,
    refreshes: 0
  };
  var refreshTimer = null;
  var refreshing = null;

  // ------------------------------------------------------------------------------------------
  // Formatting

  function serverNow() { return Date.now() + clockOffsetMs; }

  function fmtPercent(v) { return v === null || v === undefined ? '—' : v.toFixed(1) + ' %'; }

  function fmtLimit(v) {
    if (v === null || v === undefined) return '—';
    return (Number.isInteger(v) ? String(v) : v.toFixed(1)) + ' %';
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function fmtDuration(ms) {
    var total = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(total / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    return h > 0 ? h + ':' + pad(m) + ':' + pad(s) : m + ':' + pad(s);
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return '—';
    return s < 60 ? Math.round(s) + ' s' : fmtDuration(s * 1000);
  }

  // ------------------------------------------------------------------------------------------
  // Session storage and the URL fragment

  function saveSession() {
    try {
      if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
      else sessionStorage.removeItem(STORAGE_KEY);
    } catch (e) { /* storage disabled: the session lives in memory only */ }
  }

  function loadSession() {
    try {
      var stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
      if (stored && typeof stored.accessToken === 'string') return stored;
    } catch (e) { /* unreadable: sign in again */ }
    return null;
  }

  function fragment() { return new URLSearchParams(location.hash.replace(/^#/, '')); }

  function setFragment(params) {
    var text = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (text ? '#' + text : ''));
  }

  // ------------------------------------------------------------------------------------------
  // GraphQL over HTTP

  function noteServerDate(response) {
    var date = Date.parse(response.headers.get('date') || '');
    // One-second resolution (the header is truncated to the second: add half of one). Enough
    // for times shown in seconds on screens whose clocks may be minutes off.
    if (!isNaN(date)) clockOffsetMs = date + 500 - Date.now();
  }

  // Resolves to {data, errors} or {network: true} when the server could not be reached.
  function gql(query, variables, authenticated) {
    var headers = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json'
    };
    if (authenticated && session) headers.authorization = 'Bearer ' + session.accessToken;
    return fetch('/graphql', {
      method: 'POST', headers: headers, cache: 'no-store',
      body: JSON.stringify({ query: query, variables: variables || {} })
    }).then(function (response) {
      noteServerDate(response);
      return response.json().catch(function () { return { network: true }; });
    }, function () { return { network: true }; });
  }

  function errorCode(body) {
    var e = body && body.errors && body.errors[0];
    return e && e.extensions ? e.extensions.code : null;
  }

  // ------------------------------------------------------------------------------------------
  // One graphql-transport-ws socket

  function Connection(token) {
    var self = this;
    this.ops = new Map();
    this.nextId = 1;
    this.acked = false;
    this.snapshot = false;
    this.retired = false;
    this.kpiOp = null;
    this.lastMessageAt = Date.now();
    var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.ws = new WebSocket(scheme + '//' + location.host + '/graphql', PROTOCOL);
    this.ws.onopen = function () { self.send({ type: 'connection_init', payload: { token: token } }); };
    this.ws.onmessage = function (event) { self.receive(event.data); };
    this.ws.onclose = function (event) { onSocketClosed(self, event.code); };
    this.ws.onerror = function () { /* a close event follows */ };
    this.pinger = setInterval(function () { self.send({ type: 'ping' }); }, CLIENT_PING_MS);
  }

  Connection.prototype.send = function (message) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  };

  Connection.prototype.subscribe = function (query, variables, handlers) {
    var id = String(this.nextId++);
    this.ops.set(id, handlers);
    this.send({ id: id, type: 'subscribe', payload: { query: query, variables: variables } });
    return id;
  };

  Connection.prototype.unsubscribe = function (id) {
    if (id !== null && this.ops.delete(id)) this.send({ id: id, type: 'complete' });
  };

  Connection.prototype.close = function (code, reason) {
    this.retired = true;
    clearInterval(this.pinger);
    try { this.ws.close(code, reason); } catch (e) { /* already closed */ }
  };

  Connection.prototype.receive = function (text) {
    this.lastMessageAt = Date.now();
    var message;
    try { message = JSON.parse(text); } catch (e) { return; }
    var op = message.id !== undefined ? this.ops.get(message.id) : null;
    switch (message.type) {
      case 'connection_ack':
        this.acked = true;
        onAcked(this);
        break;
      case 'ping':
        this.send({ type: 'pong' });
        break;
      case 'next':
        if (op) op.next(message.payload || {});
        break;
      case 'error':
        this.ops.delete(message.id);
        if (op) op.error(message.payload || []);
        break;
      case 'complete':
        this.ops.delete(message.id);
        if (op && op.complete) op.complete();
        break;
      default:
        break; // pong, or something newer than this page
    }
  };

  function current(conn) { return !conn.retired && (conn === live.conn || conn === live.next); }

  // ------------------------------------------------------------------------------------------
  // Connecting, reconnecting, refreshing

  function setConnectionState(state, text) {
    document.body.dataset.connection = state;
    document.body.dataset.connects = String(live.connects);
    document.body.dataset.refreshes = String(live.refreshes);
    $('status-text').textContent = text;
  }

  function connectNow() {
    clearTimeout(live.retryTimer);
    live.retryTimer = null;
    if (live.stopped || !session) return;
    if (session.mode === 'password' && session.expiresAt - serverNow() < 3000) {
      // The access token is (nearly) expired: refresh first, or the server refuses it.
      setConnectionState('connecting', 'Renewing session…');
      refresh().then(function (outcome) {
        if (outcome === 'ok') openConnection();
        else if (outcome === 'unavailable') scheduleReconnect();
      });
      return;
    }
    openConnection();
  }

  function openConnection() {
    if (live.conn) live.conn.close(1000, 'reconnecting');
    live.connects += 1;
    setConnectionState('connecting', 'Connecting…');
    live.conn = new Connection(session.accessToken);
  }

  function scheduleReconnect() {
    if (live.stopped || live.retryTimer) return;
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, live.attempt));
    var delay = Math.round(base * (0.7 + Math.random() * 0.6));
    live.attempt += 1;
    live.retryAt = Date.now() + delay;
    live.retryTimer = setTimeout(function () {
      live.retryTimer = null;
      connectNow();
    }, delay);
    showRetryCountdown();
  }

  function showRetryCountdown() {
    if (!live.retryTimer) return;
    var seconds = Math.max(1, Math.ceil((live.retryAt - Date.now()) / 1000));
    setConnectionState('reconnecting', 'Reconnecting in ' + seconds + ' s…');
  }

  function onSocketClosed(conn, code) {
    clearInterval(conn.pinger);
    if (conn === live.next) {
      // The replacement failed; the current socket carries on until its token expires.
      live.next = null;
      return;
    }
    if (conn !== live.conn || conn.retired) return;
    live.conn = null;
    if (live.stopped) return;
    if (code === 4403) {
      onRefused(conn.acked);
      return;
    }
    scheduleReconnect();
  }

  // 4403: the token was refused at init, or it expired, was revoked or the user changed.
  function onRefused(wasAcked) {
    live.refusals = wasAcked ? 1 : live.refusals + 1;
    // The user's role may have changed: ask again what it may see.
    compliance.allowed = null;
    if (session.mode === 'password') {
      setConnectionState('connecting', 'Renewing session…');
      refresh().then(function (outcome) {
        if (outcome === 'ok') connectNow();
        else if (outcome === 'unavailable') scheduleReconnect();
      });
      return;
    }
    if (live.refusals >= 2) {
      signOut('The kiosk token or API key was refused (expired or revoked). Sign in, or open a new kiosk URL.');
      return;
    }
    scheduleReconnect();
  }

  function onAcked(conn) {
    live.refusals = 0;
    conn.subscribe(AGENT_STATES, {}, {
      next: function (payload) { onAgents(conn, payload); },
      error: function (errors) { reportErrors('agentStates', errors); },
      complete: function () { onUnexpectedComplete(conn); }
    });
    subscribeKpis(conn);
    conn.subscribe(SETTINGS, {}, {
      next: function (payload) { onSettings(conn, payload); },
      error: function (errors) { reportErrors('businessSettingsChanged', errors); },
      complete: function () { onUnexpectedComplete(conn); }
    });
    if (compliance.allowed !== false) {
      conn.subscribe(COMPLIANCE_ALERTS, {}, {
        next: function (payload) { onComplianceAlert(conn, payload); },
        error: function (errors) { onComplianceErrors(errors); },
        complete: function () { /* refused (role), or the server ended it: the poll carries on */ }
      });
    }
  }

  function subscribeKpis(conn) {
    // The queue tiles are about inbound calls: outbound dials have no queue to wait in.
    var filter = { direction: 'INBOUND' };
    if (selectedTeam) filter.teamIds = [selectedTeam];
    conn.kpiOp = conn.subscribe(LIVE_KPIS, { f: filter }, {
      next: function (payload) { onKpis(conn, payload); },
      error: function (errors) {
        reportErrors('liveKpis', errors);
        // A team that is not (or no longer) the organization's: back to all teams.
        if (selectedTeam && current(conn)) {
          $('team-filter').value = '';
          onTeamChosen();
        }
      },
      complete: function () { onUnexpectedComplete(conn); }
    });
  }

  // A live subscription never ends by itself; if the server ends one, start over with snapshots.
  function onUnexpectedComplete(conn) {
    if (conn !== live.conn || conn.retired) return;
    conn.close(1000, 'resync');
    live.conn = null;
    scheduleReconnect();
  }

  function reportErrors(what, errors) {
    var list = Array.isArray(errors) ? errors : [errors];
    if (console && console.warn) console.warn('wallboard: ' + what, list);
  }

  // Single flight: resolves to 'ok', 'denied' (signed out) or 'unavailable' (try later).
  function refresh() {
    if (refreshing) return refreshing;
    if (!session || session.mode !== 'password') return Promise.resolve('denied');
    refreshing = gql(REFRESH, { r: session.refreshToken }, false).then(function (body) {
      var payload = body.data && body.data.refreshSession;
      if (payload) {
        adoptTokens(payload);
        live.refreshes += 1;
        document.body.dataset.refreshes = String(live.refreshes);
        return 'ok';
      }
      if (body.network || errorCode(body) !== 'UNAUTHENTICATED') return 'unavailable';
      signOut('Your session has ended. Please sign in again.');
      return 'denied';
    }).then(function (outcome) {
      refreshing = null;
      return outcome;
    });
    return refreshing;
  }

  function adoptTokens(payload) {
    session = {
      mode: 'password',
      accessToken: payload.accessToken,
      refreshToken: payload.refreshToken,
      expiresAt: Date.parse(payload.expiresAt)
    };
    saveSession();
    scheduleRefresh();
  }

  // Refresh when three quarters of the access token's life have passed.
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!session || session.mode !== 'password') return;
    var left = session.expiresAt - serverNow();
    refreshTimer = setTimeout(function () {
      refresh().then(function (outcome) {
        if (outcome === 'ok') replaceConnection();
        else if (outcome === 'unavailable') {
          // The server is away: try again soon; the socket (if any) is closed 4403 at expiry.
          clearTimeout(refreshTimer);
          refreshTimer = setTimeout(scheduleRefresh, 5000);
        }
      });
    }, Math.max(0, left * 0.75));
  }

  // A socket keeps the token it was opened with until that token expires: open a second one
  // with the new token and retire the first when the second has its snapshot.
  function replaceConnection() {
    if (live.stopped) return;
    if (!live.conn || !live.conn.snapshot) {
      // Not (yet) live: the next connection attempt takes the new token anyway.
      if (!live.retryTimer) connectNow();
      return;
    }
    if (live.next) live.next.close(1000, 'superseded');
    var next = new Connection(session.accessToken);
    live.next = next;
    setTimeout(function () {
      if (live.next === next) {
        live.next = null;
        next.close(1000, 'too slow');
      }
    }, REPLACEMENT_TIMEOUT_MS);
  }

  function promote(conn) {
    if (conn !== live.next) return;
    var old = live.conn;
    live.next = null;
    live.conn = conn;
    live.connects += 1;
    if (old) old.close(1000, 'replaced after a token refresh');
  }

  function watchdog() {
    var conn = live.conn;
    if (conn && Date.now() - conn.lastMessageAt > SILENCE_LIMIT_MS) {
      // Nothing heard for too long (sleeping laptop, dead proxy): presume the socket dead.
      conn.close(4000, 'silent');
      live.conn = null;
      scheduleReconnect();
    }
    if (live.retryTimer) showRetryCountdown();
  }

  // ------------------------------------------------------------------------------------------
  // Agents

  function onAgents(conn, payload) {
    if (!current(conn)) return;
    var update = payload.data && payload.data.agentStates;
    if (!update) { reportErrors('agentStates', payload.errors); return; }
    if (update.kind === 'SNAPSHOT') {
      agents.clear();
      if (conn === live.next) promote(conn);
    }
    update.agents.forEach(function (agent) { agents.set(agent.id, agent); });
    update.removedAgentIds.forEach(function (id) { agents.delete(id); });
    if (update.kind === 'SNAPSHOT' && !conn.snapshot) {
      conn.snapshot = true;
      if (conn === live.conn) {
        live.attempt = 0;
        setConnectionState('live', 'Live');
        // Resync everything read over HTTP as well: the socket may have been down a while.
        loadWho();
        fetchCompliance(COMPLIANCE_URGENT_MS);
      }
    }
    renderTeams();
    renderAgents();
  }

  function displayState(agent) {
    if (agent.routingState !== 'IDLE') {
      return { state: agent.routingState, since: agent.routingSince };
    }
    return { state: agent.presence, since: agent.presenceSince };
  }

  function stateLabel(agent, state) {
    var label = STATE_LABELS[state] || state;
    if (state === agent.presence && agent.presenceReason) label += ' · ' + agent.presenceReason;
    if (state !== agent.presence && agent.presence !== 'AVAILABLE') {
      label += ' → ' + (STATE_LABELS[agent.presence] || agent.presence);
    }
    return label;
  }

  function visibleAgents() {
    var list = [];
    agents.forEach(function (agent) {
      if (!selectedTeam || agent.teamId === selectedTeam) list.push(agent);
    });
    list.sort(function (a, b) {
      var offA = a.presence === 'OFFLINE' ? 1 : 0;
      var offB = b.presence === 'OFFLINE' ? 1 : 0;
      return offA - offB || a.name.localeCompare(b.name, undefined, { numeric: true }) ||
        (a.id < b.id ? -1 : 1);
    });
    return list;
  }

  function makeCard(id) {
    var card = document.createElement('div');
    card.className = 'agent';
    card.dataset.agentId = id;
    ['name', 'state', 'time', 'team'].forEach(function (part) {
      var span = document.createElement('span');
      span.className = 'agent-' + part;
      card.appendChild(span);
    });
    return card;
  }

  function renderAgents() {
    var grid = $('agent-grid');
    var list = visibleAgents();
    var seen = new Set();
    var counts = {};
    list.forEach(function (agent) {
      seen.add(agent.id);
      var card = cards.get(agent.id);
      if (!card) {
        card = makeCard(agent.id);
        cards.set(agent.id, card);
      }
      var shown = displayState(agent);
      counts[shown.state] = (counts[shown.state] || 0) + 1;
      card.dataset.state = shown.state;
      card.dataset.since = shown.since;
      card.children[0].textContent = agent.name;
      card.children[1].textContent = stateLabel(agent, shown.state);
      card.children[2].textContent = fmtDuration(serverNow() - Date.parse(shown.since));
      card.children[3].textContent = agent.teamName || '';
    });
    cards.forEach(function (card, id) {
      if (!seen.has(id)) {
        card.remove();
        cards.delete(id);
      }
    });
    var order = list.map(function (agent) { return agent.id; }).join(',');
    if (order !== renderedOrder) {
      list.forEach(function (agent) { grid.appendChild(cards.get(agent.id)); });
      renderedOrder = order;
    }
    grid.dataset.filtered = selectedTeam ? 'true' : 'false';
    $('agent-empty').hidden = list.length > 0;
    if (list.length !== fittedCount) fitGrid(list.length);
    renderSummary(counts);
  }

  // A wall screen cannot scroll: with more agents than fit, cards get smaller (three rows per
  // card, then two, then two in smaller type) until they all show.
  var DENSITIES = ['normal', 'compact', 'dense'];
  var fittedCount = -1;

  function fitGrid(count) {
    var grid = $('agent-grid');
    fittedCount = count;
    for (var i = 0; i < DENSITIES.length; i++) {
      grid.dataset.density = DENSITIES[i];
      if (grid.scrollHeight <= grid.clientHeight + 1) return;
    }
  }

  function renderSummary(counts) {
    var summary = $('agent-summary');
    summary.textContent = '';
    STATE_ORDER.forEach(function (state) {
      if (!counts[state]) return;
      var item = document.createElement('li');
      item.dataset.state = state;
      item.textContent = counts[state] + ' ' + STATE_LABELS[state];
      summary.appendChild(item);
    });
  }

  function tickAgents() {
    cards.forEach(function (card) {
      card.children[2].textContent = fmtDuration(serverNow() - Date.parse(card.dataset.since));
    });
  }

  function renderTeams() {
    var teams = new Map();
    agents.forEach(function (agent) {
      if (agent.teamId) teams.set(agent.teamId, agent.teamName || agent.teamId);
    });
    if (selectedTeam && !teams.has(selectedTeam)) teams.set(selectedTeam, 'Team (no agents)');
    var sorted = Array.from(teams.entries()).sort(function (a, b) {
      return a[1].localeCompare(b[1], undefined, { numeric: true });
    });
    var key = JSON.stringify(sorted);
    if (key === teamsKey) return;
    teamsKey = key;
    var select = $('team-filter');
    select.textContent = '';
    var all = document.createElement('option');
    all.value = '';
    all.textContent = 'All teams';
    select.appendChild(all);
    sorted.forEach(function (entry) {
      var option = document.createElement('option');
      option.value = entry[0];
      option.textContent = entry[1];
      select.appendChild(option);
    });
    select.value = selectedTeam;
  }

  function onTeamChosen() {
    selectedTeam = $('team-filter').value;
    var params = fragment();
    if (selectedTeam) params.set('team', selectedTeam); else params.delete('team');
    setFragment(params);
    renderedOrder = '';
    renderAgents();
    // The tiles follow the team: resubscribe liveKpis with the new filter.
    kpisStale = true;
    renderTiles();
    var conn = live.conn;
    if (conn && conn.acked) {
      conn.unsubscribe(conn.kpiOp);
      subscribeKpis(conn);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Tiles

  function onKpis(conn, payload) {
    if (!current(conn)) return;
    var tiles = payload.data && payload.data.liveKpis;
    if (!tiles) { reportErrors('liveKpis', payload.errors); return; }
    timezone = tiles.timezone;
    kpis = tiles;
    kpisStale = false;
    renderTiles();
    fetchCompliance(COMPLIANCE_CALLS_MS);
  }

  function onSettings(conn, payload) {
    if (!current(conn)) return;
    var value = payload.data && payload.data.businessSettingsChanged;
    if (!value) { reportErrors('businessSettingsChanged', payload.errors); return; }
    settings = value;
    renderTiles();
  }

  function setTile(id, value, sub, level) {
    var tile = $(id);
    tile.querySelector('[data-field="value"]').textContent = value;
    tile.querySelector('[data-field="sub"]').textContent = sub;
    tile.dataset.level = level;
    tile.dataset.stale = kpisStale ? 'true' : 'false';
  }

  function renderTiles() {
    var today = kpis ? kpis.today : null;
    var threshold = kpis ? kpis.serviceLevelThresholdSeconds : settings ? settings.serviceLevelThresholdSeconds : null;

    var sl = today ? today.serviceLevel : null;
    var target = settings ? settings.serviceLevelTargetPercent : null;
    setTile('tile-service-level', fmtPercent(sl),
      target === null ? '' : 'target ' + fmtLimit(target) + (threshold !== null ? ' in ' + threshold + ' s' : ''),
      sl === null || target === null ? 'none' : sl >= target ? 'good' : 'bad');

    var asa = today ? today.averageSpeedOfAnswer : null;
    setTile('tile-asa', fmtSeconds(asa),
      today ? today.answered + ' answered today' : '',
      asa === null || threshold === null ? 'none' : asa <= threshold ? 'good' : 'warn');

    var waiting = kpis ? kpis.callsWaiting : null;
    setTile('tile-waiting', waiting === null ? '—' : String(waiting), 'in queue now',
      waiting === null ? 'none' : waiting === 0 ? 'good' : 'warn');

    renderLongestWait();

    var rate = today ? today.abandonRate : null;
    var max = settings ? settings.maxAbandonRatePercent : null;
    setTile('tile-abandon-rate', fmtPercent(rate),
      (max === null ? '' : 'limit ' + fmtLimit(max)) +
        (today ? (max === null ? '' : ' · ') + today.abandoned + ' of ' + today.offered + ' today' : ''),
      rate === null || max === null ? 'none' : rate <= max ? 'good' : 'bad');

    renderDropRate();
  }

  function renderLongestWait() {
    var threshold = kpis ? kpis.serviceLevelThresholdSeconds : null;
    var since = kpis && kpis.oldestWaitingSince ? Date.parse(kpis.oldestWaitingSince) : null;
    if (since === null) {
      setTile('tile-longest-wait', '—', 'nobody waiting', kpis ? 'good' : 'none');
      return;
    }
    var waited = serverNow() - since;
    setTile('tile-longest-wait', fmtDuration(waited),
      threshold !== null ? 'answer within ' + threshold + ' s' : '',
      threshold !== null && waited > threshold * 1000 ? 'bad' : 'warn');
  }

  // ------------------------------------------------------------------------------------------
  // Outbound compliance: the drop-rate tile and the banner

  function onComplianceAlert(conn, payload) {
    if (!current(conn)) return;
    if (payload.errors && !payload.data) { onComplianceErrors(payload.errors); return; }
    fetchCompliance(COMPLIANCE_URGENT_MS);
  }

  function onComplianceErrors(errors) {
    var list = Array.isArray(errors) ? errors : [errors];
    var forbidden = list.some(function (e) {
      return e && e.extensions && (e.extensions.code === 'FORBIDDEN' || e.extensions.code === 'UNAUTHENTICATED');
    });
    if (forbidden) {
      compliance.allowed = false;
      renderDropRate();
      renderBanner();
    } else {
      reportErrors('complianceAlerts', list);
    }
  }

  // Reads complianceStatus again, at most once per `minInterval` ms (reads are queued, not
  // dropped, so the last trigger is always followed by a read).
  function fetchCompliance(minInterval) {
    if (compliance.allowed === false || !session || compliance.timer) return;
    var wait = Math.max(0, compliance.lastFetch + minInterval - Date.now());
    compliance.timer = setTimeout(function () {
      compliance.timer = null;
      compliance.lastFetch = Date.now();
      gql(COMPLIANCE_STATUS, {}, true).then(function (body) {
        if (body.data && body.data.complianceStatus) {
          compliance.allowed = true;
          compliance.rows = body.data.complianceStatus;
        } else if (errorCode(body) === 'FORBIDDEN') {
          compliance.allowed = false;
        } else {
          return; // unreachable or failing: keep what is shown, the next trigger retries
        }
        renderDropRate();
        renderBanner();
      });
    }, wait);
  }

  function worstCampaign(rows) {
    var worst = null;
    var worstRatio = -1;
    rows.forEach(function (row) {
      var ratio = row.uk.rate === null ? -1 : row.uk.rate / (row.uk.limit || 1);
      if (worst === null || ratio > worstRatio) {
        worst = row;
        worstRatio = ratio;
      }
    });
    return worst;
  }

  function levelOf(status) {
    return status === 'BREACH' ? 'bad' : status === 'WARNING' ? 'warn' : 'good';
  }

  function renderDropRate() {
    if (compliance.allowed === false) {
      setTile('tile-drop-rate', '—', usingKey() ? 'needs an API key with kpi:read' : 'shown to supervisors', 'none');
      return;
    }
    var rows = compliance.rows;
    if (!rows) {
      setTile('tile-drop-rate', '—', '', 'none');
      return;
    }
    if (rows.length === 0) {
      setTile('tile-drop-rate', '—', 'no outbound campaigns', 'none');
      return;
    }
    var worst = worstCampaign(rows);
    if (worst.uk.rate === null) {
      setTile('tile-drop-rate', '—', 'no live outbound calls in 24 h', 'none');
      return;
    }
    setTile('tile-drop-rate', fmtPercent(worst.uk.rate),
      'limit ' + fmtLimit(worst.uk.limit) + ' · ' + worst.campaignName + ' · 24 h',
      levelOf(worst.uk.status));
  }

  function renderBanner() {
    var banner = $('compliance-banner');
    var rows = compliance.allowed === false || !compliance.rows ? [] : compliance.rows;
    var alerts = rows.filter(function (row) { return row.status !== 'OK'; });
    if (alerts.length === 0) {
      banner.hidden = true;
      banner.textContent = '';
      banner.dataset.level = 'OK';
      return;
    }
    var breach = alerts.some(function (row) { return row.status === 'BREACH'; });
    banner.dataset.level = breach ? 'BREACH' : 'WARNING';
    banner.textContent = '';
    var title = document.createElement('strong');
    title.textContent = breach ? 'Compliance breach' : 'Compliance warning';
    banner.appendChild(title);
    alerts.forEach(function (row) {
      var window = row.uk.status !== 'OK' ? row.uk : row.us;
      var span = document.createElement('span');
      span.className = 'banner-item';
      span.dataset.campaignId = row.campaignId;
      span.textContent = row.campaignName + ': outbound drop rate ' + fmtPercent(window.rate) +
        (window === row.uk ? ' over 24 h' : ' over 30 days') + ', limit ' + fmtLimit(window.limit);
      banner.appendChild(span);
    });
    banner.hidden = false;
  }

  // ------------------------------------------------------------------------------------------
  // Who is signed in

  function usingKey() {
    return !!session && session.accessToken.indexOf(API_KEY_PREFIX) === 0;
  }

  function loadWho() {
    gql(usingKey() ? WHO_FOR_KEY : WHO, {}, true).then(function (body) {
      var data = body.data;
      if (!data) return;
      if (data.organization) {
        $('org-name').textContent = data.organization.name;
        document.title = data.organization.name + ' — wallboard';
      }
      if (data.me) {
        role = data.me.role;
        if (ROLES.indexOf(role) >= 0 && ROLES.indexOf(role) < ROLES.indexOf('SUPERVISOR')) {
          compliance.allowed = false;
          renderDropRate();
          renderBanner();
        }
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Sign-in and sign-out

  function showSignIn(message) {
    $('sign-in').hidden = false;
    $('board').hidden = true;
    $('sign-out').hidden = true;
    $('sign-in-error').textContent = message || '';
    setConnectionState('signed-out', 'Signed out');
    $('email').focus();
  }

  function onSignIn(event) {
    event.preventDefault();
    var button = $('sign-in-submit');
    button.disabled = true;
    $('sign-in-error').textContent = '';
    gql(LOGIN, { e: $('email').value, p: $('password').value }, false).then(function (body) {
      button.disabled = false;
      var payload = body.data && body.data.login;
      if (payload) {
        $('password').value = '';
        adoptTokens(payload);
        start();
      } else if (body.network) {
        $('sign-in-error').textContent = 'The server cannot be reached. Try again shortly.';
      } else {
        var e = body.errors && body.errors[0];
        $('sign-in-error').textContent = e ? e.message : 'Sign-in failed.';
      }
    });
  }

  function stop() {
    live.stopped = true;
    clearTimeout(live.retryTimer);
    live.retryTimer = null;
    clearTimeout(refreshTimer);
    [live.conn, live.next].forEach(function (conn) { if (conn) conn.close(1000, 'signed out'); });
    live.conn = null;
    live.next = null;
  }

  function signOut(message) {
    var ending = session;
    stop();
    session = null;
    saveSession();
    role = null;
    compliance.allowed = null;
    compliance.rows = null;
    if (ending && ending.mode === 'password' && ending.refreshToken) {
      gql(LOGOUT, { r: ending.refreshToken }, false);
    }
    showSignIn(message);
  }

  function start() {
    $('sign-in').hidden = true;
    $('board').hidden = false;
    $('sign-out').hidden = false;
    live.stopped = false;
    live.attempt = 0;
    live.refusals = 0;
    compliance.allowed = null;
    renderTiles();
    scheduleRefresh();
    connectNow();
  }

  // Reads the fragment: `token` (taken out of the address bar at once) and `team`.
  function boot() {
    var params = fragment();
    var token = params.get('token');
    if (token) {
      stop();
      session = { mode: 'kiosk', accessToken: token };
      saveSession();
      params.delete('token');
      setFragment(params);
    } else if (!session) {
      session = loadSession();
    }
    selectedTeam = params.get('team') || '';
    if (session) start(); else showSignIn('');
  }

  function tick() {
    tickAgents();
    if (kpis && kpis.oldestWaitingSince) renderLongestWait();
    var options = { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false };
    if (timezone) options.timeZone = timezone;
    try {
      $('clock').textContent = new Intl.DateTimeFormat(undefined, options).format(new Date(serverNow()));
    } catch (e) {
      $('clock').textContent = new Date(serverNow()).toLocaleTimeString();
    }
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('sign-in-form').addEventListener('submit', onSignIn);
    $('sign-out').addEventListener('click', function () { signOut(''); });
    $('team-filter').addEventListener('change', onTeamChosen);
    window.addEventListener('hashchange', function () {
      if (fragment().has('token')) boot();
    });
    window.addEventListener('online', function () { if (live.retryTimer) connectNow(); });
    window.addEventListener('resize', function () { fitGrid(fittedCount); });
    setInterval(tick, 1000);
    setInterval(watchdog, 1000);
    setInterval(function () { fetchCompliance(COMPLIANCE_URGENT_MS); }, COMPLIANCE_POLL_MS);
    tick();
    boot();
  });
})();
