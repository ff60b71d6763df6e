// Tests of the Pushback post-login Action against local servers that answer
// as Pushback's POST /v1/decide does. Run: node --test integrations/auth0/test/action.test.js
// (mesh.test.js beside it runs against a real mesh: go test ./integrations/auth0/).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { makeEvent, runAction, fakePushback, closedPort } = require('../testkit/fake-auth0.js');

const TOKEN = 'hook-token-for-the-action-0123456789';
const OFF_PUSH = ['otp', 'webauthn-roaming', 'webauthn-platform', 'phone'];

// The JSON names DecideRequest accepts (protojson); Pushback refuses others.
const REQUEST_FIELDS = ['userId', 'appId', 'factor', 'attemptId', 'time', 'client', 'tenant', 'sessionId', 'groups'];
const CLIENT_FIELDS = ['ip', 'userAgent', 'deviceId', 'asn', 'geo', 'asOrg', 'anonymizer'];
const GEO_FIELDS = ['latitude', 'longitude', 'accuracyKm', 'country', 'region', 'city'];

function answer(outcome, extra = {}) {
  return {
    outcome,
    risk: { score: 80, signals: [{ code: 'PUSH_BURST', weight: 40 }] },
    reasons: ['5 or more push attempts in 10 minutes look like push bombing'],
    matchedRules: ['burst-deny'],
    decisionId: 'dec_01J9ZQ4K7W',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    policyVersion: 'default-2026.12',
    ...extra,
  };
}

// withPushback runs fn against a fake Pushback answering reply(request).
async function withPushback(reply, fn) {
  const pb = await fakePushback(reply);
  try {
    return await fn(pb);
  } finally {
    await pb.close();
  }
}

function secrets(url, more = {}) {
  return { PUSHBACK_URL: url, PUSHBACK_TOKEN: TOKEN, ...more };
}

test('sends the DecideRequest JSON that POST /v1/decide accepts, with the hook token', async () => {
  await withPushback(() => ({ body: answer('OUTCOME_ALLOW') }), async (pb) => {
    const before = Date.now();
    const ev = makeEvent({ secrets: secrets(pb.url + '/'), authorization: { roles: ['support', 'staff'] } });
    await runAction(ev);
    assert.equal(pb.requests.length, 1);
    const r = pb.requests[0];
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/v1/decide');
    assert.equal(r.headers.authorization, `Bearer ${TOKEN}`);
    assert.match(r.headers['content-type'], /^application\/json/);
    const b = r.body;
    for (const k of Object.keys(b)) assert.ok(REQUEST_FIELDS.includes(k), `unknown field ${k}`);
    for (const k of Object.keys(b.client)) assert.ok(CLIENT_FIELDS.includes(k), `unknown field client.${k}`);
    for (const k of Object.keys(b.client.geo)) assert.ok(GEO_FIELDS.includes(k), `unknown field client.geo.${k}`);
    assert.equal(b.userId, 'auth0|64f0a1b2c3');
    assert.equal(b.appId, 'cl_7Hq2vNbX', 'applications are named by client_id, as the Auth0 log intake names them');
    assert.equal(b.factor, 'FACTOR_PUSH');
    assert.match(b.attemptId, /^auth0-[0-9a-f]{32}$/);
    assert.equal(b.tenant, 'acme-prod');
    assert.equal(b.sessionId, ev.session.id);
    assert.deepEqual(b.groups, ['support', 'staff']);
    const t = Date.parse(b.time);
    assert.ok(t >= before - 1000 && t <= Date.now() + 1000, `time ${b.time}`);
    assert.match(b.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.deepEqual(b.client, {
      ip: '198.51.100.7',
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0',
      geo: { latitude: 40.71, longitude: -74.0, country: 'US', region: 'NY', city: 'New York' },
    });
  });
});

test('OUTCOME_ALLOW challenges with the Guardian push', async () => {
  await withPushback(() => ({ body: answer('OUTCOME_ALLOW') }), async (pb) => {
    const r = await runAction(makeEvent({ secrets: secrets(pb.url) }));
    assert.deepEqual(r.calls, [{ method: 'authentication.challengeWith', args: [{ type: 'push-notification' }] }]);
  });
});

test('OUTCOME_REQUIRE_NUMBER_MATCH moves the login off push to the factors the user has', async (t) => {
  await withPushback(() => ({ body: answer('OUTCOME_REQUIRE_NUMBER_MATCH', { numberChallenge: '42' }) }), async (pb) => {
    const cases = [
      { name: 'push and otp', enrolled: [{ type: 'push-notification' }, { type: 'otp' }], want: ['otp'] },
      {
        name: 'push, phone, security key',
        enrolled: [{ type: 'phone', options: { preferredMethod: 'sms' } }, { type: 'push-notification' }, { type: 'webauthn-roaming' }],
        want: ['webauthn-roaming', 'phone'],
      },
      { name: 'unknown to Auth0', enrolled: undefined, want: OFF_PUSH },
    ];
    for (const c of cases) {
      await t.test(c.name, async () => {
        const r = await runAction(makeEvent({ secrets: secrets(pb.url), user: { enrolledFactors: c.enrolled } }));
        assert.deepEqual(r.calls, [{ method: 'authentication.challengeWithAny', args: [c.want.map((type) => ({ type }))] }]);
      });
    }
    await t.test('push only: denied, never a blind push, never an enrollment', async () => {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url), user: { enrolledFactors: [{ type: 'push-notification' }] } }));
      assert.equal(r.effect.kind, 'deny');
      assert.match(r.effect.reason, /verification method other than push/);
      assert.match(r.effect.reason, /reference dec_01J9ZQ4K7W/);
    });
  });
});

test('OUTCOME_REQUIRE_PHISHING_RESISTANT asks for a security key or passkey', async (t) => {
  await withPushback(() => ({ body: answer('OUTCOME_REQUIRE_PHISHING_RESISTANT') }), async (pb) => {
    await t.test('both WebAuthn kinds unknown to Auth0: both offered', async () => {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url), user: { enrolledFactors: undefined } }));
      assert.deepEqual(r.calls, [{ method: 'authentication.challengeWithAny', args: [[{ type: 'webauthn-roaming' }, { type: 'webauthn-platform' }]] }]);
    });
    await t.test('a passkey enrolled', async () => {
      const r = await runAction(makeEvent({
        secrets: secrets(pb.url),
        user: { enrolledFactors: [{ type: 'push-notification' }, { type: 'otp' }, { type: 'webauthn-platform' }] },
      }));
      assert.deepEqual(r.calls, [{ method: 'authentication.challengeWithAny', args: [[{ type: 'webauthn-platform' }]] }]);
    });
    await t.test('no WebAuthn enrolled: denied (a one-time code is not phishing resistant)', async () => {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url) }));
      assert.equal(r.effect.kind, 'deny');
      assert.match(r.effect.reason, /contact your help desk/i);
    });
  });
});

test('OUTCOME_DENY denies with a reason safe to show the user', async () => {
  await withPushback(() => ({ body: answer('OUTCOME_DENY', { cooldown: '900s' }) }), async (pb) => {
    const r = await runAction(makeEvent({ secrets: secrets(pb.url) }));
    assert.equal(r.effect.kind, 'deny');
    assert.match(r.effect.reason, /^Too many sign-in attempts\./);
    assert.match(r.effect.reason, /\(reference dec_01J9ZQ4K7W\)$/);
    for (const secret of ['push bombing', 'burst-deny', 'PUSH_BURST', '900', 'default-2026.12']) {
      assert.ok(!r.effect.reason.includes(secret), `the reason tells the user ${secret}`);
    }
  });
});

test('fail modes: what a login gets when Pushback gives no answer', async (t) => {
  const url = await closedPort();
  const modes = [
    { mode: undefined, want: 'off-push' },
    { mode: 'otp', want: 'off-push' },
    { mode: 'OTP ', want: 'off-push' },
    { mode: 'open', want: 'push' },
    { mode: 'closed', want: 'deny' },
    { mode: 'sideways', want: 'off-push', log: /PUSHBACK_FAIL_MODE "sideways" is not open, closed or otp/ },
  ];
  for (const m of modes) {
    await t.test(`PUSHBACK_FAIL_MODE=${m.mode === undefined ? "(unset)" : m.mode}`, async () => {
      const more = m.mode === undefined ? {} : { PUSHBACK_FAIL_MODE: m.mode };
      const r = await runAction(makeEvent({ secrets: secrets(url, more) }));
      assert.equal(r.effect.kind, m.want);
      if (m.want === 'off-push') assert.deepEqual(r.effect.factors, ['otp']);
      if (m.want === 'deny') assert.match(r.effect.reason, /temporarily unavailable/);
      if (m.log) assert.ok(r.logs.some((l) => m.log.test(l)), r.logs.join('\n'));
    });
  }
  await t.test('otp, and push is all the user has: denied', async () => {
    const r = await runAction(makeEvent({ secrets: secrets(url), user: { enrolledFactors: [{ type: 'push-notification' }] } }));
    assert.equal(r.effect.kind, 'deny');
    assert.match(r.effect.reason, /verification method other than push/);
    assert.ok(!r.effect.reason.includes('reference'), 'no decision, no reference');
  });
});

test('Pushback unreachable (nothing listens): the fail mode, at once', async () => {
  const url = await closedPort();
  const r = await runAction(makeEvent({ secrets: secrets(url, { PUSHBACK_FAIL_MODE: 'closed' }) }));
  assert.equal(r.effect.kind, 'deny');
  assert.ok(r.elapsedMs < 1000, `took ${r.elapsedMs} ms`);
  assert.ok(r.logs.some((l) => /no decision \(unreachable: ECONNREFUSED\): fail mode closed/.test(l)), r.logs.join('\n'));
});

test('Pushback slower than PUSHBACK_TIMEOUT_MS: the fail mode within the timeout', async () => {
  await withPushback(() => ({ delayMs: 5000, body: answer('OUTCOME_ALLOW') }), async (pb) => {
    const r = await runAction(makeEvent({ secrets: secrets(pb.url, { PUSHBACK_TIMEOUT_MS: '300', PUSHBACK_FAIL_MODE: 'closed' }) }));
    assert.equal(pb.requests.length, 1);
    assert.equal(r.effect.kind, 'deny', 'the late ALLOW must not be used');
    assert.ok(r.elapsedMs >= 250 && r.elapsedMs < 1500, `took ${r.elapsedMs} ms`);
    assert.ok(r.logs.some((l) => l.includes('no answer within 300 ms')), r.logs.join('\n'));
  });
});

test('without PUSHBACK_TIMEOUT_MS the Action waits about 1.5 s', async () => {
  await withPushback(() => ({ delayMs: 6000, body: answer('OUTCOME_ALLOW') }), async (pb) => {
    const r = await runAction(makeEvent({ secrets: secrets(pb.url, { PUSHBACK_TIMEOUT_MS: 'soon' }) }));
    assert.equal(r.effect.kind, 'off-push');
    assert.ok(r.elapsedMs >= 1400 && r.elapsedMs < 3500, `took ${r.elapsedMs} ms`);
    assert.ok(r.logs.some((l) => l.includes('no answer within 1500 ms')), r.logs.join('\n'));
  });
});

test('a refused token (401): the fail mode, and the token in no log', async () => {
  // This Pushback even echoes the token it was sent; the Action must not pass it on.
  await withPushback((req) => ({
    status: 401,
    headers: { 'WWW-Authenticate': 'Bearer realm="pushback"' },
    body: { error: { code: 'UNAUTHENTICATED', reason: 'ERROR_REASON_UNAUTHENTICATED', message: `unknown token ${req.headers.authorization}` } },
  }), async (pb) => {
    for (const mode of ['otp', 'open', 'closed']) {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url, { PUSHBACK_FAIL_MODE: mode }) }));
      assert.equal(r.effect.kind, { otp: 'off-push', open: 'push', closed: 'deny' }[mode]);
      assert.ok(r.logs.some((l) => l.includes('HTTP 401 UNAUTHENTICATED ERROR_REASON_UNAUTHENTICATED')), r.logs.join('\n'));
      assert.ok(r.logs.length > 0);
    }
  });
});

test('errors and unusable answers: the fail mode', async (t) => {
  const cases = [
    { name: '500', reply: { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } }, log: 'HTTP 500 INTERNAL' },
    { name: '503', reply: { status: 503, body: 'upstream unavailable' }, log: 'HTTP 503' },
    { name: '400', reply: { status: 400, body: { error: { code: 'INVALID_ARGUMENT', reason: 'ERROR_REASON_INVALID_ARGUMENT' } } }, log: 'HTTP 400 INVALID_ARGUMENT' },
    { name: 'not JSON', reply: { body: '<html>gateway</html>' }, log: 'the answer is not JSON' },
    { name: 'no outcome', reply: { body: { decisionId: 'dec_x' } }, log: 'the answer has no known outcome' },
    { name: 'unknown outcome', reply: { body: answer('OUTCOME_MAYBE') }, log: 'the answer has no known outcome' },
    { name: 'JSON null', reply: { body: 'null' }, log: 'the answer has no known outcome' },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      await withPushback(() => c.reply, async (pb) => {
        const r = await runAction(makeEvent({ secrets: secrets(pb.url, { PUSHBACK_FAIL_MODE: 'open' }) }));
        assert.equal(r.effect.kind, 'push');
        assert.ok(r.logs.some((l) => l.includes(c.log) && l.includes('fail mode open')), r.logs.join('\n'));
      });
    });
  }
});

test('a redirect is not followed: the token stays with Pushback', async () => {
  await withPushback(() => ({ body: answer('OUTCOME_ALLOW') }), async (elsewhere) => {
    await withPushback(() => ({ status: 307, headers: { Location: elsewhere.url + '/v1/decide' } }), async (pb) => {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url, { PUSHBACK_FAIL_MODE: 'closed' }) }));
      assert.equal(pb.requests.length, 1);
      assert.equal(elsewhere.requests.length, 0);
      assert.equal(r.effect.kind, 'deny');
    });
  });
});

test('misconfiguration: the fail mode, and nothing sent', async (t) => {
  const cases = [
    { name: 'no URL', s: { PUSHBACK_TOKEN: TOKEN }, log: 'PUSHBACK_URL is not set' },
    { name: 'no token', s: { PUSHBACK_URL: 'https://pushback.example.com' }, log: 'PUSHBACK_TOKEN is not set' },
    { name: 'not a URL', s: { PUSHBACK_URL: 'pushback', PUSHBACK_TOKEN: TOKEN }, log: 'PUSHBACK_URL is not a URL' },
    { name: 'plain http beyond loopback', s: { PUSHBACK_URL: 'http://pushback.example.com', PUSHBACK_TOKEN: TOKEN }, log: 'PUSHBACK_URL must use https' },
    { name: 'credentials in the URL', s: { PUSHBACK_URL: 'https://u:p@pushback.example.com', PUSHBACK_TOKEN: TOKEN }, log: 'without credentials' },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const realFetch = globalThis.fetch;
      let fetched = 0;
      globalThis.fetch = (...args) => { fetched++; return realFetch(...args); };
      try {
        const r = await runAction(makeEvent({ secrets: { ...c.s, PUSHBACK_FAIL_MODE: 'closed' } }));
        assert.equal(r.effect.kind, 'deny');
        assert.ok(r.logs.some((l) => l.includes(c.log)), r.logs.join('\n'));
      } finally {
        globalThis.fetch = realFetch;
      }
      assert.equal(fetched, 0);
    });
  }
});

test('logins Pushback does not guard are left alone', async (t) => {
  await withPushback(() => ({ body: answer('OUTCOME_DENY') }), async (pb) => {
    await t.test('no push enrolled', async () => {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url), user: { enrolledFactors: [{ type: 'otp' }] } }));
      assert.equal(r.effect.kind, 'none');
    });
    await t.test('nothing enrolled', async () => {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url), user: { enrolledFactors: [] } }));
      assert.equal(r.effect.kind, 'none');
    });
    await t.test('a refresh token exchange', async () => {
      const r = await runAction(makeEvent({ secrets: secrets(pb.url), transaction: { protocol: 'oauth2-refresh-token' } }));
      assert.equal(r.effect.kind, 'none');
    });
    assert.equal(pb.requests.length, 0);
  });
});

test('attempt ids: one per login, made from what Auth0 makes up', async () => {
  await withPushback(() => ({ body: answer('OUTCOME_ALLOW') }), async (pb) => {
    const s = secrets(pb.url);
    const a = makeEvent({ secrets: s });
    await runAction(a);
    await runAction(a); // the same login asked twice
    const b = makeEvent({ secrets: s, transaction: a.transaction, request: { query: a.request.query } }); // a new login, same browser state
    await runAction(b);
    // The same session signing on again (single sign-on) is a new login too.
    const c = makeEvent({ secrets: s, session: a.session, authentication: a.authentication, stats: { logins_count: a.stats.logins_count + 1 } });
    await runAction(c);
    // Where Auth0 names the transaction, its id decides.
    const d1 = makeEvent({ secrets: s, transaction: { id: 'tx-1', protocol: 'oidc-basic-profile' } });
    const d2 = makeEvent({ secrets: s, transaction: { id: 'tx-1', protocol: 'oidc-basic-profile' } });
    await runAction(d1);
    await runAction(d2);
    const ids = pb.requests.map((r) => r.body.attemptId);
    assert.equal(ids[0], ids[1]);
    assert.notEqual(ids[0], ids[2]);
    assert.notEqual(ids[0], ids[3]);
    assert.notEqual(ids[2], ids[3]);
    assert.equal(ids[4], ids[5]);
    assert.equal(new Set([ids[0], ids[2], ids[3], ids[4]]).size, 4);
    for (const x of ids) assert.match(x, /^auth0-[0-9a-f]{32}$/);
    // Without a session a login still gets an id of its own.
    const e1 = makeEvent({ secrets: s, session: undefined });
    const e2 = makeEvent({ secrets: s, session: undefined });
    await runAction(e1);
    await runAction(e2);
    assert.notEqual(pb.requests[6].body.attemptId, pb.requests[7].body.attemptId);
    assert.equal(pb.requests[6].body.sessionId, undefined);
  });
});

test('what Auth0 hands over is made to fit Pushback\'s limits', async () => {
  await withPushback(() => ({ body: answer('OUTCOME_ALLOW') }), async (pb) => {
    const ev = makeEvent({
      secrets: secrets(pb.url, { PUSHBACK_APP_ID: 'name', PUSHBACK_TENANT: 'acme' }),
      client: { client_id: 'cl_1', name: 'Pay\u0007roll \u202eadmin\n' },
      request: { ip: 'not-an-ip', user_agent: 'é'.repeat(800), geoip: { latitude: 'x', longitude: 3 } },
      authorization: { roles: Array.from({ length: 70 }, (_, i) => `role-${i}`).concat(['']) },
    });
    await runAction(ev);
    const b = pb.requests[0].body;
    assert.equal(b.appId, 'Payroll admin');
    assert.equal(b.tenant, 'acme');
    assert.equal(b.client.ip, undefined);
    assert.equal(b.client.geo, undefined);
    assert.equal(Buffer.byteLength(b.client.userAgent, 'utf8'), 1024);
    assert.equal(b.groups.length, 64);
  });
});
