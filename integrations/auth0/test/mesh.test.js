// The Action against a real Pushback mesh: a push-bombing burst of logins.
// The Go test integrations/auth0/action_test.go starts the mesh and runs
// this file with PUSHBACK_TEST_URL and PUSHBACK_TEST_TOKEN set:
//   go test ./integrations/auth0/
// Without them this test fails rather than passing untried.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { makeEvent, runAction } = require('../testkit/fake-auth0.js');

const URL = process.env.PUSHBACK_TEST_URL;
const TOKEN = process.env.PUSHBACK_TEST_TOKEN;
// The Go test reads these decisions back from the mesh.
const USER = process.env.PUSHBACK_TEST_USER || `auth0|burst-${process.pid}`;
const TENANT = 'pushback-test';
const CLIENT = { client_id: 'pushback-test-client', name: 'Pushback test', metadata: {} };

// Fail mode "open": a login the Action moves off push or denies can only be
// Pushback's own answer, never an error taken for one.
function secrets(token = TOKEN) {
  return { PUSHBACK_URL: URL, PUSHBACK_TOKEN: token, PUSHBACK_FAIL_MODE: 'open', PUSHBACK_TIMEOUT_MS: '10000' };
}

// login is one password login of the user from the attacker's address: a
// new session each time, as a script replaying the password makes.
function login(token) {
  return makeEvent({
    secrets: secrets(token),
    tenant: { id: TENANT },
    client: CLIENT,
    user: { user_id: USER, enrolledFactors: [{ type: 'push-notification' }, { type: 'otp' }, { type: 'webauthn-roaming' }] },
    authorization: { roles: ['support'] },
  });
}

test('mesh: PUSHBACK_TEST_URL and PUSHBACK_TEST_TOKEN are set (go test ./integrations/auth0/ sets them)', () => {
  assert.ok(URL, 'PUSHBACK_TEST_URL is not set: run go test ./integrations/auth0/, which starts a mesh and runs this file');
  assert.ok(TOKEN, 'PUSHBACK_TEST_TOKEN is not set: run go test ./integrations/auth0/');
});

test('mesh: a wrong token is refused (401) and the fail mode answers; nothing is counted', { skip: !URL || !TOKEN }, async () => {
  const wrong = 'not-the-hook-token-0123456789abcdef';
  const r = await runAction(login(wrong));
  assert.equal(r.effect.kind, 'push', 'fail mode open');
  assert.ok(r.logs.some((l) => l.includes('no decision (HTTP 401 UNAUTHENTICATED')), r.logs.join('\n'));
});

test('mesh: a burst of logins: the first gets a push, the 5th and 6th no push', { skip: !URL || !TOKEN }, async () => {
  const seen = [];
  let sixth;
  for (let i = 1; i <= 6; i++) {
    const ev = login();
    const r = await runAction(ev);
    for (const l of r.logs) {
      assert.ok(!l.includes('no decision'), `login ${i}: Pushback did not answer: ${l}`);
    }
    seen.push(r.effect);
    sixth = ev;
  }
  const kinds = seen.map((e) => e.kind).join(' ');
  assert.equal(seen[0].kind, 'push', `1st login: ${kinds}`);
  for (const i of [4, 5]) {
    assert.ok(seen[i].kind === 'deny' || seen[i].kind === 'off-push', `login ${i + 1} still gets a push: ${kinds}`);
    if (seen[i].kind === 'off-push') {
      assert.ok(!seen[i].factors.includes('push-notification'));
    }
  }
  // The same login asked again is the same attempt: the same answer, not
  // a 7th push counted (the Go test counts the decisions).
  const again = await runAction(sixth);
  assert.deepEqual(again.effect, seen[5]);
  console.log(`burst: ${kinds}`);
});
