// Benchmarks of the Node package against the Rust engine it wraps, and against secretlint.
//
//   node bindings/node/bench.mjs          (after `npm run build` and `cargo build --release -p sluice-benches`)
//
// 1. engine.scan of a 10 MiB buffer of source code vs the same scan in Rust
//    (target/release/sluice-throughput): target within 10%.
// 2. Per-call overhead of engine.check over the Rust decision.
// 3. `sluice scan` vs secretlint (npm, recommended preset) on the same files: wall time and each
//    tool's findings, on clean source and on files with planted synthetic secrets.
//
// The corpus is the Rust sources of the local cargo registry (or SLUICE_BENCH_CORPUS).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { tmpdir, homedir } from 'node:os'
import { join } from 'node:path'
import { randomInt } from 'node:crypto'

import { Engine } from './index.mjs'

const ROOT = new URL('../../', import.meta.url).pathname
const THROUGHPUT = join(ROOT, 'target/release/sluice-throughput')
const SLUICE = join(ROOT, 'target/release/sluice')
const SIZE = 10 * 1024 * 1024

function* walk(dir) {
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))
  } catch {
    return
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) yield* walk(p)
    else if (/\.(rs|py|js|ts|go|c|h)$/.test(e.name)) yield p
  }
}

function corpus(limit) {
  const base = process.env.SLUICE_BENCH_CORPUS ?? join(homedir(), '.cargo/registry/src')
  const files = []
  let total = 0
  for (const p of walk(base)) {
    files.push(p)
    total += statSync(p).size
    if (total >= limit) break
  }
  return files
}

function best(f, rounds = 5) {
  let b = Infinity
  for (let i = 0; i < rounds; i++) {
    const t = process.hrtime.bigint()
    f()
    b = Math.min(b, Number(process.hrtime.bigint() - t) / 1e9)
  }
  return b
}

const engine = new Engine()
const files = corpus(SIZE)
let data = Buffer.concat(files.map((p) => readFileSync(p)))
while (data.length < SIZE) data = Buffer.concat([data, data])
data = data.subarray(0, SIZE)
const dir = mkdtempSync(join(tmpdir(), 'sluice-node-bench-'))
writeFileSync(join(dir, 'corpus.bin'), data)

const rust = JSON.parse(execFileSync(THROUGHPUT, ['scan', join(dir, 'corpus.bin'), '5']).toString())
const node = data.length / best(() => engine.scan(data)) / 1e6
const text = data.toString('utf8')
const nodeStr = text.length > 0 ? Buffer.byteLength(text) / best(() => engine.scan(text)) / 1e6 : 0
let asyncBest = Infinity
for (let i = 0; i < 5; i++) {
  const t = process.hrtime.bigint()
  await engine.scanAsync(data)
  asyncBest = Math.min(asyncBest, Number(process.hrtime.bigint() - t) / 1e9)
}
console.log(`scan of ${(data.length / 1048576).toFixed(0)} MiB of source: Rust ${rust.mb_s} MB/s, Node (Buffer) ${node.toFixed(1)} MB/s = ${(node / rust.mb_s * 100).toFixed(1)}% of Rust; string ${nodeStr.toFixed(1)} MB/s; scanAsync ${(data.length / asyncBest / 1e6).toFixed(1)} MB/s`)

for (const [protocol, command] of [['shell', 'cargo test --workspace --locked 2>&1 | tail -20'], ['sql', 'SELECT id, name FROM users WHERE id = 42']]) {
  const r = JSON.parse(execFileSync(THROUGHPUT, ['check', protocol, command, '200000']).toString())
  const n = 200000
  for (let i = 0; i < 10000; i++) engine.check(protocol, command)
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) engine.check(protocol, command)
  const ns = Number(process.hrtime.bigint() - t) / n
  console.log(`check ${protocol}: Rust ${r.ns_per_call} ns, Node ${ns.toFixed(0)} ns per call: overhead ${((ns - r.ns_per_call) / 1000).toFixed(2)} µs`)
}

// sluice scan vs secretlint on the same files.
const secretlint = join(ROOT, 'bindings/node/node_modules/.bin/secretlint')
if (!existsSync(secretlint)) {
  console.log('secretlint not installed (npm install --no-save secretlint @secretlint/secretlint-rule-preset-recommend): comparison skipped')
} else {
  const clean = join(dir, 'clean')
  mkdirSync(clean)
  files.slice(0, 600).forEach((p, i) => writeFileSync(join(clean, `f${i}.rs`), readFileSync(p)))
  const planted = join(dir, 'planted')
  mkdirSync(planted)
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  const rnd = (n) => Array.from({ length: n }, () => a[randomInt(a.length)]).join('')
  for (let i = 0; i < 40; i++) {
    // Synthetic keys in real formats, generated for this run.
    const secret = i % 2 ? `sk_live_${rnd(24)}` : `AKIA${rnd(16).toUpperCase().replace(/[^A-Z2-7]/g, 'Q')}`
    writeFileSync(join(planted, `p${i}.env`), `# config\nKEY=${secret}\n`)
  }
  writeFileSync(join(dir, '.secretlintrc.json'), JSON.stringify({ rules: [{ id: '@secretlint/secretlint-rule-preset-recommend' }] }))
  for (const [name, target] of [['clean source (600 files)', clean], ['planted (40 files)', planted]]) {
    let t = process.hrtime.bigint()
    const s = spawnSync(SLUICE, ['scan', '--format', 'json', target], { maxBuffer: 1 << 30 })
    const sTime = Number(process.hrtime.bigint() - t) / 1e9
    const sFound = JSON.parse(s.stdout.toString()).findings.length
    t = process.hrtime.bigint()
    const l = spawnSync(secretlint, [`${target}/**/*`, '--format', 'json', '--secretlintrc', join(dir, '.secretlintrc.json')], { cwd: dir, maxBuffer: 1 << 30 })
    const lTime = Number(process.hrtime.bigint() - t) / 1e9
    let lFound = 0
    const out = l.stdout.toString().trim()
    // secretlint prints nothing when it finds nothing.
    lFound = out === '' ? 0 : JSON.parse(out).reduce((n, f) => n + f.messages.length, 0)
    console.log(`${name}: sluice ${sTime.toFixed(2)} s, ${sFound} findings; secretlint ${lTime.toFixed(2)} s, ${lFound} findings (${(lTime / sTime).toFixed(1)}x)`)
  }
}
