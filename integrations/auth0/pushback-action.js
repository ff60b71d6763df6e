/**
 * Pushback post-login Action for Auth0.
 *
 * Before Auth0 sends a Guardian push, this Action asks Pushback
 * (POST {PUSHBACK_URL}/v1/decide) whether the push may be sent and in what
 * form, and turns the answer into the login's MFA challenge:
 *
 *   OUTCOME_ALLOW                      challenge with the Guardian push
 *   OUTCOME_REQUIRE_NUMBER_MATCH       no push: one-time code, security key,
 *                                      passkey or phone (Guardian cannot
 *                                      show a number to match)
 *   OUTCOME_REQUIRE_PHISHING_RESISTANT no push: security key or passkey
 *   OUTCOME_DENY                       the login is denied
 *
 * Secrets (Actions > this Action > Secrets):
 *   PUSHBACK_URL         base URL of Pushback's HTTP API (https://; plain
 *                        http only to a loopback address)
 *   PUSHBACK_TOKEN       a hook token of Pushback (--auth-tokens)
 *   PUSHBACK_FAIL_MODE   what happens when Pushback gives no usable answer:
 *                        "otp" (the default: move the login off push),
 *                        "open" (send the push anyway) or "closed" (deny)
 *   PUSHBACK_TIMEOUT_MS  how long to wait for Pushback (default 1500,
 *                        100..10000)
 *   PUSHBACK_APP_ID      optional: "client_id" (the default, as Pushback's
 *                        Auth0 log intake names applications) or "name"
 *   PUSHBACK_TENANT      optional: the tenant sent to Pushback (default the
 *                        Auth0 tenant name, event.tenant.id)
 *
 * The token is sent only in the Authorization header and never logged.
 * See integrations/auth0/README.md in the Pushback repository.
 */
'use strict';

const crypto = require('crypto');
const net = require('net');

const DEFAULT_TIMEOUT_MS = 1500;
const MIN_TIMEOUT_MS = 100;
const MAX_TIMEOUT_MS = 10000;

const PUSH = 'push-notification';
// Factors a login moved off push may use, in the order offered. No push:
// an attacker holding the password could still ask for one. Email is left
// out: a stolen mailbox often comes with a stolen password.
const OFF_PUSH = ['otp', 'webauthn-roaming', 'webauthn-platform', 'phone'];
const PHISHING_RESISTANT = ['webauthn-roaming', 'webauthn-platform'];

const FAIL_MODES = new Set(['open', 'closed', 'otp']);
const DEFAULT_FAIL_MODE = 'otp';

const OUTCOMES = new Set([
  'OUTCOME_ALLOW',
  'OUTCOME_REQUIRE_NUMBER_MATCH',
  'OUTCOME_REQUIRE_PHISHING_RESISTANT',
  'OUTCOME_DENY',
]);

// What a denied user reads. Nothing here tells an attacker which rule
// fired or how long to wait.
const DENIED = 'Too many sign-in attempts. Wait a few minutes, then try again. ' +
  'If you did not try to sign in, contact your help desk.';
const NO_SAFE_FACTOR = 'This sign-in needs a verification method other than push ' +
  'notifications, and none is set up for your account. Contact your help desk.';
const UNAVAILABLE = 'Sign-in is temporarily unavailable. Try again in a few minutes.';

// Pushback's limits on what it is sent (longer values are refused).
const MAX_ID_BYTES = 256;
const MAX_TEXT_BYTES = 1024;
const MAX_GROUPS = 64;

exports.onExecutePostLogin = async (event, api) => {
  const secrets = event.secrets || {};
  const log = logger(secrets.PUSHBACK_TOKEN);

  // A refresh token exchange has nobody to challenge.
  if (event.transaction && event.transaction.protocol === 'oauth2-refresh-token') {
    return;
  }
  // Only logins that would get a push are Pushback's. When Auth0 says which
  // factors the user has and push is not among them, the rest of the login
  // flow (the tenant's MFA policy, other Actions) decides.
  const enrolled = enrolledTypes(event.user);
  if (enrolled && !enrolled.has(PUSH)) {
    log('no push enrolled: left to the rest of the login flow');
    return;
  }

  const settings = readSettings(secrets, log);
  const verdict = settings.problem
    ? { failure: settings.problem }
    : await askPushback(settings, decideRequest(event, settings));
  if (verdict.failure) {
    log(`no decision (${verdict.failure}): fail mode ${settings.failMode}`);
    applyFailMode(settings.failMode, api, enrolled, log);
    return;
  }
  const ref = verdict.decisionId ? ` (reference ${verdict.decisionId})` : '';
  log(`decision ${verdict.decisionId || '-'}: ${verdict.outcome}`);
  switch (verdict.outcome) {
    case 'OUTCOME_ALLOW':
      api.authentication.challengeWith({ type: PUSH });
      return;
    case 'OUTCOME_REQUIRE_NUMBER_MATCH':
      challengeAny(api, OFF_PUSH, enrolled, ref, log);
      return;
    case 'OUTCOME_REQUIRE_PHISHING_RESISTANT':
      challengeAny(api, PHISHING_RESISTANT, enrolled, ref, log);
      return;
    default: // OUTCOME_DENY
      api.access.deny(DENIED + ref);
  }
};

function applyFailMode(mode, api, enrolled, log) {
  switch (mode) {
    case 'open':
      api.authentication.challengeWith({ type: PUSH });
      return;
    case 'closed':
      api.access.deny(UNAVAILABLE);
      return;
    default: // otp
      challengeAny(api, OFF_PUSH, enrolled, '', log);
  }
}

// challengeAny challenges with the factors of want the user has, or all of
// them when Auth0 does not say; with none, the login is denied: a factor is
// never enrolled during a login that is held back from push.
function challengeAny(api, want, enrolled, ref, log) {
  const types = enrolled ? want.filter((t) => enrolled.has(t)) : want;
  if (types.length === 0) {
    log(`none of ${want.join(', ')} enrolled: denied`);
    api.access.deny(NO_SAFE_FACTOR + ref);
    return;
  }
  api.authentication.challengeWithAny(types.map((type) => ({ type })));
}

function enrolledTypes(user) {
  const factors = user && user.enrolledFactors;
  if (!Array.isArray(factors)) {
    return null;
  }
  return new Set(factors.map((f) => f && f.type).filter((t) => typeof t === 'string'));
}

function readSettings(secrets, log) {
  const s = { failMode: DEFAULT_FAIL_MODE, timeoutMs: DEFAULT_TIMEOUT_MS };
  const mode = String(secrets.PUSHBACK_FAIL_MODE || '').trim().toLowerCase();
  if (FAIL_MODES.has(mode)) {
    s.failMode = mode;
  } else if (mode !== '') {
    log(`PUSHBACK_FAIL_MODE "${mode}" is not open, closed or otp: using ${DEFAULT_FAIL_MODE}`);
  }
  const t = String(secrets.PUSHBACK_TIMEOUT_MS || '').trim();
  if (t !== '') {
    const n = Number(t);
    if (Number.isFinite(n) && n > 0) {
      s.timeoutMs = Math.min(MAX_TIMEOUT_MS, Math.max(MIN_TIMEOUT_MS, Math.round(n)));
    } else {
      log(`PUSHBACK_TIMEOUT_MS "${t}" is not a number of milliseconds: using ${DEFAULT_TIMEOUT_MS}`);
    }
  }
  s.appIdFrom = String(secrets.PUSHBACK_APP_ID || '').trim() === 'name' ? 'name' : 'client_id';
  s.tenant = secrets.PUSHBACK_TENANT ? String(secrets.PUSHBACK_TENANT) : undefined;
  s.token = String(secrets.PUSHBACK_TOKEN || '').trim();
  if (s.token === '') {
    s.problem = 'PUSHBACK_TOKEN is not set';
  }
  const endpoint = decideURL(secrets.PUSHBACK_URL);
  if (endpoint.problem) {
    s.problem = endpoint.problem;
  }
  s.url = endpoint.url;
  return s;
}

// decideURL is {PUSHBACK_URL}/v1/decide. The token travels in clear over
// plain http, so that is refused beyond loopback.
function decideURL(raw) {
  const text = String(raw || '').trim();
  if (text === '') {
    return { problem: 'PUSHBACK_URL is not set' };
  }
  let u;
  try {
    u = new URL(text);
  } catch {
    return { problem: 'PUSHBACK_URL is not a URL' };
  }
  if (u.username || u.password || u.search || u.hash) {
    return { problem: 'PUSHBACK_URL must be a base URL without credentials, query or fragment' };
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
    return { problem: 'PUSHBACK_URL must use https' };
  }
  u.pathname = u.pathname.replace(/\/+$/, '') + '/v1/decide';
  return { url: u.toString() };
}

// decideRequest is the DecideRequest in the JSON of POST /v1/decide
// (protojson names; Pushback refuses fields it does not know).
function decideRequest(event, settings) {
  const user = event.user || {};
  const client = event.client || {};
  const request = event.request || {};
  const body = {
    userId: id(user.user_id),
    appId: id(settings.appIdFrom === 'name' ? client.name || client.client_id : client.client_id),
    factor: 'FACTOR_PUSH',
    attemptId: attemptId(event),
    time: new Date().toISOString(),
    tenant: id(settings.tenant !== undefined ? settings.tenant : event.tenant && event.tenant.id),
    sessionId: id(event.session && event.session.id),
  };
  const c = {};
  const ip = typeof request.ip === 'string' ? request.ip.split('%')[0] : '';
  if (net.isIP(ip)) {
    c.ip = ip;
  }
  if (typeof request.user_agent === 'string' && request.user_agent !== '') {
    c.userAgent = truncate(request.user_agent, MAX_TEXT_BYTES);
  }
  const geo = geoOf(request.geoip);
  if (geo) {
    c.geo = geo;
  }
  if (Object.keys(c).length > 0) {
    body.client = c;
  }
  const roles = event.authorization && event.authorization.roles;
  if (Array.isArray(roles)) {
    const groups = roles.map(id).filter((g) => g !== '').slice(0, MAX_GROUPS);
    if (groups.length > 0) {
      body.groups = groups;
    }
  }
  for (const k of Object.keys(body)) {
    if (body[k] === '') {
      delete body[k];
    }
  }
  return body;
}

// attemptId names this login for Pushback: the same while this login is
// decided, new for every new one. It is built only from what Auth0 makes
// up, never from what the browser sends (an OAuth state an attacker reused
// would make every push of a burst "the same attempt", counted once).
function attemptId(event) {
  const tx = event.transaction && event.transaction.id;
  if (typeof tx === 'string' && tx !== '') {
    return 'auth0-' + digest(['tx', tx]);
  }
  const session = event.session && event.session.id;
  const logins = event.stats && event.stats.logins_count;
  if (typeof session === 'string' && session !== '' && Number.isFinite(logins)) {
    // The first factor's time changes with every password typed, the login
    // count with every single sign-on.
    const methods = (event.authentication && event.authentication.methods) || [];
    const firstFactor = methods.filter((m) => m && m.name !== 'mfa').map((m) => String(m.timestamp || ''));
    return 'auth0-' + digest(['session', session, String(logins)].concat(firstFactor));
  }
  return 'auth0-' + crypto.randomUUID();
}

function digest(parts) {
  return crypto.createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 32);
}

function geoOf(g) {
  if (!g || typeof g !== 'object') {
    return undefined;
  }
  const lat = g.latitude;
  const lon = g.longitude;
  if (typeof lat !== 'number' || typeof lon !== 'number' || !Number.isFinite(lat) || !Number.isFinite(lon) ||
    Math.abs(lat) > 90 || Math.abs(lon) > 180) {
    return undefined;
  }
  const geo = { latitude: lat, longitude: lon };
  for (const [from, to] of [['countryCode', 'country'], ['subdivisionCode', 'region'], ['cityName', 'city']]) {
    if (typeof g[from] === 'string' && g[from] !== '') {
      geo[to] = truncate(g[from], MAX_TEXT_BYTES);
    }
  }
  return geo;
}

// askPushback calls Decide once within the timeout. It answers
// {outcome, decisionId} or {failure} (a short cause, without the token).
async function askPushback(settings, body) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), settings.timeoutMs);
  try {
    const res = await fetch(settings.url, {
      method: 'POST',
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/json',
        Authorization: `Bearer ${settings.token}`,
      },
      body: JSON.stringify(body),
      redirect: 'error', // a redirect would carry the token elsewhere
      signal: abort.signal,
    });
    const text = await res.text();
    if (!res.ok) {
      return { failure: `HTTP ${res.status}${errorReason(text)}` };
    }
    let answer;
    try {
      answer = JSON.parse(text);
    } catch {
      return { failure: 'the answer is not JSON' };
    }
    const outcome = answer && answer.outcome;
    if (!OUTCOMES.has(outcome)) {
      return { failure: 'the answer has no known outcome' };
    }
    return { outcome, decisionId: typeof answer.decisionId === 'string' ? id(answer.decisionId) : '' };
  } catch (err) {
    if (abort.signal.aborted) {
      return { failure: `no answer within ${settings.timeoutMs} ms` };
    }
    const code = err && err.cause && err.cause.code;
    return { failure: `unreachable: ${code || (err && err.name) || 'error'}` };
  } finally {
    clearTimeout(timer);
  }
}

// errorReason names Pushback's error code and reason, when the body is one
// of its JSON errors.
function errorReason(text) {
  try {
    const e = JSON.parse(text).error;
    const parts = [e.code, e.reason].filter((p) => typeof p === 'string' && p !== '');
    return parts.length > 0 ? ` ${parts.map((p) => id(p)).join(' ')}` : '';
  } catch {
    return '';
  }
}

// id makes a value fit Pushback's identifiers: a string without control or
// bidirectional formatting characters, at most 256 bytes.
function id(v) {
  if (typeof v !== 'string') {
    return '';
  }
  // eslint-disable-next-line no-control-regex
  const clean = v.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '').trim();
  return truncate(clean, MAX_ID_BYTES);
}

// truncate cuts s to at most max bytes of UTF-8, on a character boundary.
function truncate(s, max) {
  if (Buffer.byteLength(s, 'utf8') <= max) {
    return s;
  }
  let out = '';
  let n = 0;
  for (const ch of s) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (n + size > max) {
      break;
    }
    out += ch;
    n += size;
  }
  return out;
}

// logger writes to the Action's log (Auth0's real-time logs). The token is
// never part of a message; should it ever appear, it is masked.
function logger(token) {
  const secret = typeof token === 'string' ? token.trim() : '';
  return (msg) => {
    let line = `pushback: ${msg}`;
    if (secret.length > 0) {
      line = line.split(secret).join('[redacted]');
    }
    console.log(line);
  };
}
