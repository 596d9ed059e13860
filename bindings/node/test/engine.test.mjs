// The Node package against the same tables the Rust and Python tests run: the detector's
// vectors (testdata/vectors.json) and the embedded policy's cases (testdata/policy/agent-safe.json).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { randomInt } from 'node:crypto'

import { Engine, PolicyError, RuleError, RequestError, SluiceError } from '../index.mjs'
import cjs from '../index.js'

const root = new URL('../../../', import.meta.url)
const vectors = JSON.parse(readFileSync(new URL('testdata/vectors.json', root), 'utf8')).cases
const policyCases = JSON.parse(readFileSync(new URL('testdata/policy/agent-safe.json', root), 'utf8')).cases
const engine = new Engine()

const stripeKey = () => {
  // Synthetic, made for this run.
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  return 'sk_live_' + Array.from({ length: 24 }, () => a[randomInt(a.length)]).join('')
}

test('ESM and CommonJS entry points are the same module', async () => {
  assert.equal(cjs.Engine, Engine)
  const esm = await import('../index.mjs')
  for (const name of Object.keys(cjs)) assert.equal(esm[name], cjs[name], name)
  assert.equal(esm.default, cjs)
})

test('vectors: findings as string (UTF-16 offsets) and as Buffer (byte offsets)', () => {
  for (const c of vectors) {
    const found = engine.scan(c.input)
    assert.deepEqual(found.map((f) => [f.rule, c.input.slice(f.start, f.end)]), c.findings.map((e) => [e.rule, e.secret]), c.id)
    const buf = Buffer.from(c.input)
    const foundB = engine.scan(buf)
    assert.deepEqual(foundB.map((f) => [f.rule, buf.subarray(f.start, f.end).toString()]), c.findings.map((e) => [e.rule, e.secret]), c.id)
    for (const [f, e] of found.map((f, i) => [f, c.findings[i]])) {
      if ('line' in e) assert.deepEqual([f.line, f.column], [e.line, e.column], c.id)
      assert.equal(f.fingerprint.length, 32)
    }
  }
})

test('vectors: redaction keeps the type and masks every secret', () => {
  for (const c of vectors) {
    const masked = engine.redact(c.input)
    assert.equal(typeof masked, 'string')
    assert.deepEqual(engine.redact(Buffer.from(c.input)), Buffer.from(masked))
    assert.deepEqual(engine.redact(new Uint8Array(Buffer.from(c.input))), Buffer.from(masked))
    for (const e of c.findings) {
      assert.ok(!masked.includes(e.secret), c.id)
      assert.ok(masked.includes(`[REDACTED:${e.rule}:`), c.id)
    }
    for (const keep of c.survives ?? []) assert.ok(masked.includes(keep), `${c.id}: ${keep}`)
  }
})

test('streaming equals one-shot at every chunk size, across chunk boundaries', async () => {
  const text = vectors.map((c, i) => `ünïcode ✓ line ${i}\n` + c.input).join('')
  const data = Buffer.from(text)
  for (const size of [1, 2, 3, 7, 64, 4096]) {
    const r = engine.streamRedactor()
    const parts = []
    for (let i = 0; i < data.length; i += size) parts.push(r.feed(data.subarray(i, i + size)))
    parts.push(r.finish())
    assert.deepEqual(Buffer.concat(parts), engine.redact(data), `size ${size}`)
    assert.throws(() => r.finish(), SluiceError)
  }
  const chunks = []
  await pipeline(
    Readable.from((function* () { for (let i = 0; i < data.length; i += 5) yield data.subarray(i, i + 5) })()),
    engine.redactStream(),
    new Writable({ write(c, _e, done) { chunks.push(c); done() } }),
  )
  assert.deepEqual(Buffer.concat(chunks), engine.redact(data))
})

test('a secret planted in a stream never comes out of redactStream', async () => {
  const secret = stripeKey()
  const data = Buffer.from(`header\nSTRIPE=${secret}\nfooter\n`)
  const out = []
  await pipeline(Readable.from([data.subarray(0, 13), data.subarray(13, 20), data.subarray(20)]), engine.redactStream(),
    new Writable({ write(c, _e, done) { out.push(c); done() } }))
  const text = Buffer.concat(out).toString()
  assert.ok(!text.includes(secret) && text.includes('[REDACTED:stripe-secret-key:'))
})

test('policy: the agent-safe case table', () => {
  let n = 0
  for (const c of policyCases) {
    const d = engine.check(c.protocol, c.command, {
      user: c.user ?? 'agent', groups: c.groups ?? [], attributes: c.attributes ?? {},
      target: c.target ?? 'default', labels: c.labels ?? {},
      dialect: c.dialect ?? 'postgres', headers: c.headers, body: c.body, ssh: c.ssh ?? 'exec',
    })
    assert.equal(d.decision, c.expect, `${c.name}: ${d.reason}`)
    if ('rule' in c) assert.equal(d.rule, c.rule, c.name)
    if (d.decision === 'require_approval') assert.ok(d.approval.id.startsWith('apr_'))
    n++
  }
  assert.ok(n > 500)
})

test('errors are SluiceError subclasses with a code and where they are', () => {
  assert.throws(() => Engine.fromYaml('version: 1\nname: x\nrules: [ {id: a, action: maybe} ]\n'), (e) =>
    e instanceof PolicyError && e instanceof SluiceError && e.code === 'SLUICE_POLICY' && e.origin === 'policy')
  assert.throws(() => new Engine({ rules: ['[[rule]]\nid = "x"\ndescription = "d"\npattern = "("\nkeywords = ["ab"]\n'] }),
    (e) => e instanceof RuleError && e.code === 'SLUICE_RULE' && e.rule === 'x' && e.line === 4)
  assert.throws(() => engine.check('smtp', 'HELO'), (e) => e instanceof RequestError && e.code === 'SLUICE_REQUEST')
  assert.throws(() => Engine.fromFile('/nonexistent/policy.yaml'), PolicyError)
})

test('a policy from YAML decides', () => {
  const e = Engine.fromYaml('version: 1\nname: mine\ndefault: allow\nrules:\n  - {id: no-curl, action: deny, when: {shell: {programs: [curl]}}}\n')
  assert.equal(e.policyName, 'mine')
  assert.equal(e.check('shell', 'curl https://example.com').rule, 'no-curl')
  assert.equal(e.check('shell', 'ls').decision, 'allow')
})

test('async variants run off the JavaScript thread and agree with the sync calls', async () => {
  const big = vectors.map((c) => c.input).join('\n').repeat(50)
  const [a, b] = await Promise.all([engine.scanAsync(big), engine.redactAsync(Buffer.from(big))])
  assert.deepEqual(a, engine.scan(big))
  assert.deepEqual(b, engine.redact(Buffer.from(big)))
  assert.equal(await engine.redactAsync(big), engine.redact(big))
})

test('an HTTP session refuses a denied request before any byte reaches the server', () => {
  const s = engine.session('http', { user: 'agent', target: 'metadata' })
  const ex = s.fromClient('GET http://169.254.169.254/latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n')
  assert.equal(ex.toServer.length, 0)
  assert.match(ex.toClient.toString(), /^HTTP\/1\.1 403/)
  const ok = s.fromClient('GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n')
  assert.match(ok.toServer.toString(), /^GET \/ HTTP\/1\.1/)
  assert.throws(() => engine.session('smtp'), RequestError)
})

test('a grant lets exactly the approved command through, once', async () => {
  const { GrantKey, GrantError } = await import('../index.mjs')
  const key = GrantKey.generateEd25519()
  const e = new Engine({ grantKey: key.publicText() })
  const cmd = 'rm -rf /var/lib/app'
  const d = e.check('shell', cmd)
  assert.equal(d.decision, 'require_approval')
  const grant = key.issue(d.approval, [{ user: 'alice', groups: ['oncall'] }])
  assert.equal(e.check('shell', cmd, { grant }).decision, 'allow')
  assert.notEqual(e.check('shell', cmd, { grant }).decision, 'allow', 'a grant is single use')
  const other = key.issue(e.check('shell', cmd).approval, ['alice'])
  assert.notEqual(e.check('shell', 'rm -rf /var/lib/other', { grant: other }).decision, 'allow', 'only the approved command')
  assert.throws(() => GrantKey.parse('not a key'), GrantError)
  assert.throws(() => key.issue({ nope: 1 }, ['alice']), GrantError)
})
