// The rest of the API the Python package has: events as a callback, identities (given and from
// OIDC ID tokens), roles, held credentials (substitution, scrubbing, rotation) and recording.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, randomInt, sign } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  Engine,
  GrantKey,
  OidcError,
  OidcVerifier,
  RecordingError,
  RequestError,
  SessionError,
  exportAsciicast,
  replayRecording,
  verifyRecording,
} from '../index.mjs'

const root = new URL('../../../', import.meta.url)

/** A random value made for this run (synthetic: never a real credential). */
const held = (n = 24) => {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  return Array.from({ length: n }, () => a[randomInt(a.length)]).join('')
}

test('events reach onEvent in order, before the call returns', () => {
  const events = []
  const engine = new Engine({ onEvent: (e) => events.push(e) })
  engine.check('shell', 'cat ~/.aws/credentials', { identity: 'agent-7', target: 'laptop' })
  assert.equal(events.length, 1)
  const [e] = events
  assert.equal(e.event, 'decision')
  assert.equal(e.decision, 'deny')
  assert.equal(e.rule, 'credential-files')
  assert.deepEqual([e.user, e.target, e.command], ['agent-7', 'laptop', 'cat ~/.aws/credentials'])
  engine.check('mcp', { name: 'run_command', arguments: { command: 'ls' } })
  assert.equal(events.at(-1).decision, 'allow')
  assert.match(events.at(-1).command, /"run_command"/)

  // Sessions report their decisions too, each before the call returns.
  const s = engine.session('mcp', { identity: 'agent-7', target: 'files' })
  const n = events.length
  s.clientMessage({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'run_command', arguments: { command: 'cat ~/.ssh/id_rsa' } } })
  assert.equal(events.length, n + 1)
  assert.equal(events.at(-1).decision, 'deny')

  assert.throws(() => new Engine({ onEvent: 42 }), TypeError)
  // Engines built from a policy take it as well.
  const seen = []
  Engine.fromYaml('version: 1\ndefault: deny\n', { onEvent: (e) => seen.push(e.decision) }).check('shell', 'ls')
  assert.deepEqual(seen, ['deny'])
})

test('an onEvent that throws is reported as a warning, and the decision is not lost', async () => {
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  try {
    const engine = new Engine({
      onEvent: () => {
        throw new Error('audit sink down')
      },
    })
    assert.equal(engine.check('shell', 'cat ~/.aws/credentials').decision, 'deny')
    await new Promise((r) => setImmediate(r))
    assert.ok(warnings.some((w) => w.name === 'SluiceWarning' && /audit sink down/.test(w.message)), warnings)
  } finally {
    process.off('warning', onWarning)
  }
})

test('identity and target: names, objects and shorthand; roles', () => {
  const engine = Engine.fromFile(new URL('testdata/policy/examples/team.yaml', root).pathname)
  const ann = { user: 'ann', groups: ['dba'], attributes: { employment: 'staff' } }
  assert.deepEqual(engine.roles(ann), ['dba'])
  assert.deepEqual(engine.roles({ user: 'bob', attributes: { employment: 'contractor' } }), ['contractor'])
  assert.deepEqual(engine.roles('carol'), [])
  const byObject = engine.check('sql', 'DROP TABLE t', { identity: ann, target: { name: 'prod', labels: { env: 'prod' } } })
  const byShorthand = engine.check('sql', 'DROP TABLE t', { user: 'ann', groups: ['dba'], attributes: { employment: 'staff' }, target: 'prod', labels: { env: 'prod' } })
  assert.deepEqual(byObject, byShorthand)
  assert.throws(() => engine.check('sql', 'SELECT 1', { identity: 'ann', user: 'ann' }), RequestError)
  assert.throws(() => engine.check('sql', 'SELECT 1', { target: { name: 'prod' }, labels: { env: 'prod' } }), RequestError)
  assert.throws(() => engine.session('mcp', { identity: 'ann', user: 'ann' }), RequestError)
})

/** A signed JWT (EdDSA) with `claims`, by `key`. */
function jwt(claims, key, kid = 'k1') {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const head = `${b64({ alg: 'EdDSA', typ: 'JWT', kid })}.${b64(claims)}`
  return `${head}.${sign(null, Buffer.from(head), key).toString('base64url')}`
}

test('OIDC: a valid ID token establishes the identity the policy decides on', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'EdDSA', use: 'sig' }
  const verifier = new OidcVerifier({ keys: [jwk] }, { issuer: 'https://issuer.example', audience: 'sluice' })
  const now = Math.floor(Date.now() / 1000)
  const claims = { iss: 'https://issuer.example', aud: 'sluice', sub: 'ann', groups: ['dba'], exp: now + 60 }
  const id = verifier.verify(jwt(claims, privateKey))
  assert.equal(id.user, 'ann')
  assert.deepEqual(id.groups, ['dba'])
  assert.equal(id.attributes.iss, 'https://issuer.example')

  const engine = Engine.fromFile(new URL('testdata/policy/examples/team.yaml', root).pathname)
  assert.deepEqual(engine.roles(id), ['dba'])
  assert.equal(engine.check('sql', 'SELECT 1', { identity: id, target: 'prod' }).decision, 'allow')

  // Several audiences, another user claim.
  const v2 = new OidcVerifier(JSON.stringify({ keys: [jwk] }), { issuer: 'https://issuer.example', audience: ['a', 'sluice'], userClaim: 'email' })
  assert.equal(v2.verify(jwt({ ...claims, email: 'ann@example.test' }, privateKey)).user, 'ann@example.test')

  const rejected = (token) => assert.throws(() => verifier.verify(token), (e) => e instanceof OidcError && e.code === 'SLUICE_OIDC' && typeof e.kind === 'string')
  rejected(jwt({ ...claims, aud: 'other' }, privateKey))
  rejected(jwt({ ...claims, exp: now - 3600 }, privateKey))
  rejected(jwt({ ...claims, iss: 'https://evil.example' }, privateKey))
  rejected(jwt(claims, generateKeyPairSync('ed25519').privateKey))
  rejected(jwt(claims, privateKey, 'unknown-kid'))
  rejected('not.a.token')
  const [h, p] = jwt(claims, privateKey).split('.')
  rejected(`${h}.${p}.`)
  assert.throws(() => new OidcVerifier({ keys: [] }, { issuer: 'i', audience: 'a' }), OidcError)
  assert.throws(() => new OidcVerifier('{not json', { issuer: 'i', audience: 'a' }), OidcError)
})

test('credentials: every echo of a held value comes back as its placeholder', () => {
  const pw = held()
  const engine = new Engine({ credentials: { 'pg-prod-password': pw } })
  const reversed = [...pw].reverse().join('')
  for (const form of [pw, pw.toUpperCase(), reversed, pw.slice(2, 12), Buffer.from(pw).toString('base64'), Buffer.from(pw).toString('hex')]) {
    assert.equal(engine.redact(`value: ${form} end`), 'value: sluice:secret/pg-prod-password end', form)
  }
  assert.deepEqual(engine.scan(`x ${pw} y`).map((f) => f.rule), ['sluice:secret/pg-prod-password'])
  const text = `row 1 ${reversed} row 2 ${pw}\n`
  for (let cut = 0; cut <= text.length; cut++) {
    const s = engine.streamRedactor()
    const out = Buffer.concat([s.feed(text.slice(0, cut)), s.feed(text.slice(cut)), s.finish()]).toString()
    assert.ok(!out.includes(pw) && !out.includes(reversed) && out.split('sluice:secret/').length === 3, `${cut}: ${out}`)
  }
  assert.throws(() => new Engine({ credentials: { 'Bad Name': 'x'.repeat(12) } }), RequestError)
  assert.throws(() => new Engine({ credentials: { empty: '' } }), RequestError)
})

test('credentials: substituted only where allowed, never named by value', () => {
  const token = held()
  const engine = new Engine({ credentials: { 'gh-token': token, db: Buffer.from(held()) } })
  assert.deepEqual(engine.substitute('Authorization: token sluice:secret/gh-token', { allowed: ['gh-token'] }), {
    text: `Authorization: token ${token}`,
    used: ['gh-token'],
  })
  assert.deepEqual(engine.substitute('no placeholder', { allowed: [] }), { text: 'no placeholder', used: [] })
  assert.throws(
    () => engine.substitute('sluice:secret/gh-token sluice:secret/db', { allowed: (n) => n === 'gh-token' }),
    (e) => e instanceof RequestError && /sluice:secret\/db: this credential may not be sent here/.test(e.message) && !e.message.includes(token),
  )
  assert.throws(() => engine.substitute('sluice:secret/nope', { allowed: () => true }), /no such credential/)
  assert.throws(() => engine.substitute('sluice:secret/db', { allowed: () => { throw new RangeError('boom') } }), RangeError)
  assert.throws(() => engine.substitute('x', { allowed: 42 }), TypeError)
  assert.throws(() => new Engine().substitute('x', { allowed: [] }), RequestError)
})

test('credentials: an MCP session swaps placeholders where the policy lets them go, and rotation', () => {
  const token = held()
  const policy = 'version: 1\ndefault: allow\ncredentials:\n  api-token: { targets: ["files"] }\n'
  const events = []
  const engine = Engine.fromYaml(policy, { credentials: { 'api-token': token }, onEvent: (e) => events.push(e) })
  const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'fetch', arguments: { auth: 'Bearer sluice:secret/api-token' } } }
  const s = engine.session('mcp', { identity: 'agent-7', target: 'files' })
  let out = s.clientMessage(call)
  assert.equal(JSON.parse(out.toServer).params.arguments.auth, `Bearer ${token}`)
  const answer = (v) => ({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `used ${v}` }] } })
  out = s.serverMessage(answer(token))
  assert.ok(!out.toClient.includes(token) && out.toClient.includes('used sluice:secret/api-token'))
  assert.ok(!JSON.stringify(events).includes(token))

  // Another server: refused, nothing forwarded.
  const other = engine.session('mcp', { identity: 'agent-7', target: 'shell' })
  out = other.clientMessage(call)
  assert.equal(out.toServer.length, 0)
  assert.ok(out.toClient.includes('may not be sent here') && !out.toClient.includes(token))

  // Rotation: the open session sends the new value and masks both.
  const next = held()
  engine.setCredential('api-token', next)
  out = s.clientMessage({ ...call, id: 2 })
  assert.equal(JSON.parse(out.toServer).params.arguments.auth, `Bearer ${next}`)
  out = s.serverMessage({ ...answer(`${token} and ${next}`), id: 2 })
  assert.ok(!out.toClient.includes(token) && !out.toClient.includes(next), out.toClient.toString())
  assert.equal(engine.redact(`old ${token} new ${next}`), 'old sluice:secret/api-token new sluice:secret/api-token')
  assert.throws(() => engine.setCredential('Bad Name', 'x'.repeat(12)), RequestError)
  assert.throws(() => new Engine().setCredential('a', 'x'.repeat(12)), RequestError)
})

test('recording: to memory, verified, replayed; a secret never reaches it', () => {
  const key = GrantKey.generateEd25519()
  const secret = 'sk_live_' + held()
  const engine = new Engine()
  const rec = engine.recorder({ key, protocol: 'mcp', user: 'agent-7', target: 'files' })
  assert.match(rec.sessionId, /^[0-9a-f]+$/)
  assert.equal(engine.check('shell', 'cat ~/.aws/credentials', { recorder: rec }).decision, 'deny')
  const s = engine.session('mcp', { identity: 'agent-7', target: 'files', recorder: rec })
  s.clientMessage({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read', arguments: { path: 'notes.txt' } } })
  s.serverMessage({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `KEY=${secret}` }] } })
  rec.notice(`operator note mentioning ${secret}`)
  rec.tick()
  rec.close()
  rec.close()
  const data = rec.data()
  assert.ok(!data.includes(secret))
  const report = verifyRecording(data, { key: key.publicText() })
  assert.equal(report.ok, true, report.text)
  assert.equal(report.closed, true)
  assert.equal(report.keyGiven, true)
  assert.ok(report.records >= 5 && report.signed >= 1)
  const transcript = replayRecording(data)
  assert.match(transcript, /cat ~\/\.aws\/credentials/)
  assert.match(transcript, /DENY \[credential-files\]/)
  assert.match(transcript, /KEY=\[REDACTED:stripe-secret-key/)

  // Tampering is named: flip one byte of the decision record.
  const bad = Buffer.from(data)
  const at = bad.indexOf('credential-files')
  bad[at] = bad[at] ^ 1
  const tampered = verifyRecording(bad, { key })
  assert.equal(tampered.ok, false)
  assert.equal(tampered.problem.torn, false)
  assert.ok(tampered.problem.line >= 2, tampered.text)
  // Truncation is reported as torn.
  const cut = verifyRecording(data.subarray(0, data.length - 10), { key })
  assert.equal(cut.ok, false)
  assert.equal(cut.problem.torn, true)
  // Another key does not verify it.
  assert.equal(verifyRecording(data, { key: GrantKey.generateEd25519().publicText() }).ok, false)
  assert.throws(() => verifyRecording(data, { key: GrantKey.generateHmac() }), RecordingError)
  assert.throws(() => verifyRecording([]), RecordingError)
})

test('recording: to a file (read back by path), and to a function', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-node-rec-'))
  try {
    const key = GrantKey.generateEd25519()
    const engine = new Engine()
    const path = join(dir, 'session.jsonl')
    const rec = engine.recorder({ key: key.toText(), to: path, fsync: 'every' })
    engine.check('sql', 'DROP TABLE t', { recorder: rec })
    rec.close()
    assert.equal(verifyRecording(path, { key }).ok, true)
    assert.throws(() => rec.data(), RecordingError)
    // Never overwritten.
    assert.throws(() => engine.recorder({ key, to: path }), RecordingError)

    const records = []
    const fnRec = engine.recorder({ key, to: (r) => records.push(Buffer.from(r)) })
    assert.ok(records.length >= 1, 'the start record is handed over at once')
    engine.check('shell', 'ls', { recorder: fnRec })
    const before = records.length
    fnRec.close()
    assert.ok(records.length > before)
    assert.equal(verifyRecording(Buffer.concat(records), { key }).ok, true)
    writeFileSync(join(dir, 'cast.jsonl'), Buffer.concat(records))
    const cast = exportAsciicast(join(dir, 'cast.jsonl'), { width: 80, height: 24 }).split('\n')
    assert.deepEqual([JSON.parse(cast[0]).version, JSON.parse(cast[0]).width], [2, 80])
    assert.ok(readFileSync(path).length > 0)

    assert.throws(() => engine.recorder({ key: GrantKey.generateHmac(), to: join(dir, 'x.jsonl') }), RecordingError)
    assert.throws(() => engine.recorder({ key, fsync: 'sometimes' }), RecordingError)
    assert.throws(() => engine.recorder({ key, to: 42 }), TypeError)
    assert.throws(() => engine.check('shell', 'ls', { recorder: {} }), TypeError)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('recording: a record function that fails stops recording, and new commands are refused', async () => {
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  try {
    const key = GrantKey.generateEd25519()
    const engine = new Engine()
    let up = true
    const rec = engine.recorder({
      key,
      to: () => {
        if (!up) throw new Error('store unreachable')
      },
    })
    assert.equal(engine.check('shell', 'ls', { recorder: rec }).decision, 'allow')
    up = false
    engine.check('shell', 'ls', { recorder: rec })
    const d = engine.check('shell', 'ls', { recorder: rec })
    assert.equal(d.decision, 'deny', 'failing closed: a command that cannot be recorded is refused')
    assert.match(rec.failure ?? '', /store unreachable/)
    assert.throws(() => rec.close(), RecordingError)
    await new Promise((r) => setImmediate(r))
    assert.ok(warnings.some((w) => /store unreachable/.test(w.message)))

    // failClosed: false keeps deciding, without a recording.
    up = false
    const open = engine.recorder({ key, failClosed: false, to: () => { throw new Error('down') } })
    engine.check('shell', 'ls', { recorder: open })
    assert.equal(engine.check('shell', 'ls', { recorder: open }).decision, 'allow')
  } finally {
    process.off('warning', onWarning)
  }
})

test('a session error closes the session and is a SessionError', () => {
  const s = new Engine().session('postgres')
  assert.throws(() => s.fromClient(Buffer.from([0, 0, 0, 3, 0, 0, 0, 0])), SessionError)
  assert.equal(s.closed, true)
  assert.throws(() => s.fromClient(Buffer.alloc(0)), SessionError)
})
