// Test kit for the Pushback post-login Action: runs the Action the way
// Auth0's runtime does (an event object, a recording api object, the
// global fetch), and small local HTTP servers standing in for Pushback.
// Test files live in ../test; this directory holds no tests.
'use strict';

const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');

const ACTION = path.join(__dirname, '..', 'pushback-action.js');
const { onExecutePostLogin } = require(ACTION);

let logins = 0;

// makeEvent builds a post-login event of one user signing in with a
// password to one application; every call is a new login (a new session
// and a new password entry) unless overrides say otherwise.
function makeEvent({ secrets = {}, user = {}, request = {}, ...rest } = {}) {
  logins++;
  const now = new Date();
  return {
    secrets,
    tenant: { id: 'acme-prod' },
    client: { client_id: 'cl_7Hq2vNbX', name: 'Payroll', metadata: {} },
    connection: { id: 'con_1', name: 'Username-Password-Authentication', strategy: 'auth0' },
    user: {
      user_id: 'auth0|64f0a1b2c3',
      email: 'alice@example.com',
      enrolledFactors: [{ type: 'push-notification' }, { type: 'otp' }],
      ...user,
    },
    request: {
      ip: '198.51.100.7',
      method: 'GET',
      user_agent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0',
      hostname: 'acme.eu.auth0.com',
      query: { state: 'browser-state-1', client_id: 'cl_7Hq2vNbX' },
      body: {},
      geoip: {
        cityName: 'New York', countryCode: 'US', countryCode3: 'USA', countryName: 'United States',
        subdivisionCode: 'NY', latitude: 40.71, longitude: -74.0, continentCode: 'NA', timeZone: 'America/New_York',
      },
      ...request,
    },
    transaction: { protocol: 'oidc-basic-profile', requested_scopes: ['openid'], state: 'browser-state-1', locale: 'en' },
    session: { id: `sess-${process.pid}-${logins}` },
    stats: { logins_count: 40 + logins },
    authentication: { methods: [{ name: 'pwd', timestamp: new Date(now.getTime() + logins).toISOString() }] },
    authorization: { roles: [] },
    ...rest,
  };
}

// makeApi records what the Action asks of Auth0. Each method returns the
// api, as Auth0's does.
function makeApi() {
  const calls = [];
  const api = {
    access: { deny: (reason) => { calls.push({ method: 'access.deny', args: [reason] }); return api; } },
    authentication: {
      challengeWith: (factor, options) => {
        calls.push({ method: 'authentication.challengeWith', args: options === undefined ? [factor] : [factor, options] });
        return api;
      },
      challengeWithAny: (factors) => { calls.push({ method: 'authentication.challengeWithAny', args: [factors] }); return api; },
      enrollWith: () => { calls.push({ method: 'authentication.enrollWith', args: [] }); return api; },
      enrollWithAny: () => { calls.push({ method: 'authentication.enrollWithAny', args: [] }); return api; },
    },
    multifactor: { enable: () => { calls.push({ method: 'multifactor.enable', args: [] }); return api; } },
  };
  return { api, calls };
}

// effect summarises the calls as what the user meets: "push", "off-push"
// (with the factors offered), "deny" (with the reason) or "none".
function effect(calls) {
  assert.ok(calls.length <= 1, `the Action made more than one decision: ${JSON.stringify(calls)}`);
  if (calls.length === 0) {
    return { kind: 'none' };
  }
  const [c] = calls;
  switch (c.method) {
    case 'authentication.challengeWith':
      if (c.args[0] && c.args[0].type === 'push-notification') {
        return { kind: 'push' };
      }
      return { kind: 'off-push', factors: [c.args[0].type] };
    case 'authentication.challengeWithAny': {
      const types = c.args[0].map((f) => f.type);
      assert.ok(!types.includes('push-notification'), `push offered among ${types}`);
      return { kind: 'off-push', factors: types };
    }
    case 'access.deny':
      return { kind: 'deny', reason: c.args[0] };
    default:
      assert.fail(`unexpected call ${c.method}`);
  }
}

// runAction runs the Action once and returns what it did, what it logged
// (console and the process's own streams) and how long it took. It fails
// when the token appears anywhere in what was logged or asked of Auth0.
async function runAction(event) {
  const { api, calls } = makeApi();
  const logs = [];
  const saved = {};
  for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
    saved[m] = console[m];
    console[m] = (...args) => logs.push(args.map(String).join(' '));
  }
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = function (chunk, ...rest) { logs.push(String(chunk)); return out.call(this, chunk, ...rest); };
  process.stderr.write = function (chunk, ...rest) { logs.push(String(chunk)); return err.call(this, chunk, ...rest); };
  const start = process.hrtime.bigint();
  try {
    await onExecutePostLogin(event, api);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    Object.assign(console, saved);
  }
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  const token = event.secrets && event.secrets.PUSHBACK_TOKEN;
  if (token) {
    for (const line of logs) {
      assert.ok(!line.includes(token), `the token was logged: ${line}`);
    }
    assert.ok(!JSON.stringify(calls).includes(token), 'the token reached Auth0');
  }
  return { calls, logs, elapsedMs, effect: effect(calls) };
}

// fakePushback serves POST /v1/decide from handler(req, body) and records
// every request. handler answers {status, body, delayMs, headers}.
async function fakePushback(handler) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { raw += d; });
    req.on('end', async () => {
      let body;
      try { body = JSON.parse(raw); } catch { body = undefined; }
      const r = { method: req.method, url: req.url, headers: req.headers, raw, body };
      requests.push(r);
      const a = (await handler(r)) || {};
      if (a.delayMs) {
        // A client that gives up ends the wait, so no timer outlives a test.
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, a.delayMs);
          res.on('close', () => { clearTimeout(timer); resolve(); });
        });
      }
      if (res.destroyed) {
        return;
      }
      const text = typeof a.body === 'string' ? a.body : JSON.stringify(a.body === undefined ? {} : a.body);
      res.writeHead(a.status || 200, { 'Content-Type': 'application/json', ...(a.headers || {}) });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

// closedPort is the URL of a port nothing listens on.
async function closedPort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

module.exports = { makeEvent, makeApi, effect, runAction, fakePushback, closedPort };
