// sluice/http: a real node:http origin behind the proxy, requests made with fetch.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { randomInt } from 'node:crypto'
import { once } from 'node:events'

import { Engine } from '../index.mjs'
import { createProxy } from '../http.mjs'

const stripeKey = () => {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  return 'sk_live_' + Array.from({ length: 24 }, () => a[randomInt(a.length)]).join('')
}

test('responses are masked across chunks; a refused request never reaches the origin', async () => {
  const secret = stripeKey()
  const seen = []
  const origin = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(`config\nKEY=${secret}\nend\n`)) })
    // The secret split over two writes.
    res.write(`config\nKEY=${secret.slice(0, 11)}`)
    setTimeout(() => res.end(`${secret.slice(11)}\nend\n`), 20)
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  const policy = 'version: 1\nname: http-test\ndefault: allow\nrules:\n  - {id: no-admin, action: deny, message: admin is off limits, when: {http: {paths: ["/admin/**"]}}}\n'
  const proxy = createProxy({ engine: Engine.fromYaml(policy), origin: `http://127.0.0.1:${origin.address().port}` })
  proxy.listen(0, '127.0.0.1')
  await once(proxy, 'listening')
  const base = `http://127.0.0.1:${proxy.address().port}`
  try {
    const ok = await fetch(`${base}/config`)
    const body = await ok.text()
    assert.equal(ok.status, 200)
    assert.ok(!body.includes(secret), body)
    assert.match(body, /^config\nKEY=\[REDACTED:stripe-secret-key:[0-9a-f]+\]\nend\n$/)
    const no = await fetch(`${base}/admin/users`)
    assert.equal(no.status, 403)
    assert.match(await no.text(), /admin is off limits .*\[no-admin\]/)
    assert.deepEqual(seen, ['GET /config'])
  } finally {
    proxy.close()
    origin.close()
  }
})
