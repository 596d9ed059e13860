// A TypeScript user's code, type-checked with `tsc --strict` (npm test): the package's types
// as an application sees them.
import { Engine, PolicyError, type Decision, type Finding } from 'sluice'

const engine: Engine = new Engine({ builtinRules: true })
const found: Finding[] = engine.scan(Buffer.from('text'))
const masked: string = engine.redact('text')
const maskedBytes: Buffer = engine.redact(Buffer.from('text'))
const d: Decision = engine.check('shell', 'ls -la', { user: 'dev', groups: ['eng'], target: 'laptop' })
if (d.decision === 'require_approval') console.log(d.approval)
try {
  Engine.fromYaml('version: 1')
} catch (e) {
  if (e instanceof PolicyError) console.log(e.code, e.line, e.origin)
}
const stream = engine.redactStream()
process.stdin.pipe(stream).pipe(process.stdout)
console.log(found.length, masked, maskedBytes.length)
import { guardTransport } from 'sluice/mcp'
const t = guardTransport({ start: async () => {}, close: async () => {}, send: async () => {} }, { engine, user: 'a' })
const s = engine.session('mcp', { user: 'agent', target: 'devbox' })
const ex = s.clientMessage({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
void engine.scanAsync('x').then((f: Finding[]) => f.length)
console.log(t.sessionId, ex.toServer.length)
import { sluiceMiddleware } from 'sluice/ai'
import { wrapLanguageModel, type LanguageModelMiddleware } from 'ai'
import { MockLanguageModelV4 } from 'ai/test'
const mw: LanguageModelMiddleware = sluiceMiddleware({ engine, user: 'dev', target: 'app' })
const wrapped = wrapLanguageModel({ model: new MockLanguageModelV4(), middleware: mw })
console.log(wrapped.modelId)
import { createProxy } from 'sluice/http'
const server = createProxy({ engine, origin: 'http://127.0.0.1:8080' })
server.close()
import { GrantKey } from 'sluice'
const gk = GrantKey.generateEd25519()
const ge = new Engine({ grantKey: gk.publicText() ?? undefined })
const dd = ge.check('shell', 'rm -rf /var/lib/app')
if (dd.approval) console.log(ge.check('shell', 'rm -rf /var/lib/app', { grant: gk.issue(dd.approval, ['alice', { user: 'bob', groups: ['ops'] }]) }).decision)
import { OidcVerifier, OidcError, verifyRecording, replayRecording, type Identity, type SluiceEvent } from 'sluice'
const events: SluiceEvent[] = []
const ev = new Engine({ onEvent: (e: SluiceEvent) => events.push(e), credentials: { 'api-token': 'synthetic-value-0001' }, grantKey: gk })
const verifier = new OidcVerifier({ keys: [] }, { issuer: 'https://issuer.example', audience: ['sluice'] })
try {
  const who: Identity = verifier.verify('token')
  console.log(ev.roles(who), ev.check('sql', 'SELECT 1', { identity: who, target: { name: 'prod', labels: { env: 'prod' } } }).decision)
} catch (e) {
  if (e instanceof OidcError) console.log(e.kind)
}
const sub = ev.substitute('Bearer sluice:secret/api-token', { allowed: (name: string) => name === 'api-token' })
console.log(sub.used.join(','))
ev.setCredential('api-token', Buffer.from('synthetic-value-0002'))
const rec = ev.recorder({ key: GrantKey.generateEd25519(), to: (r: Buffer) => void r.length, fsync: 'checkpoint' })
ev.check('mcp', { name: 'read', arguments: { path: 'a' } }, { recorder: rec })
const sess = ev.session('postgres', { identity: { user: 'ann', groups: ['dba'] }, recorder: rec })
console.log(sess.protocol)
rec.close()
const report = verifyRecording([Buffer.from('')], { key: gk.publicText() })
if (!report.ok) console.log(report.problem?.line, report.text, replayRecording('rec.jsonl').length)
