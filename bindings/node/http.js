'use strict'
// `sluice/http`: an HTTP proxy on `node:http` with the engine in the path. Each request is
// decided by the HTTP policy (method, URL, headers) before it is forwarded; a refused one is
// answered 403 with the reason and never reaches the origin. Every response body is piped
// through the streaming redactor, so secrets are masked however the body is chunked.
// Responses are re-sent without Content-Length (masking changes it) and without compression
// the redactor could not read (the proxy asks the origin for identity encoding).

const http = require('node:http')
const { pipeline } = require('node:stream')
const { Engine } = require('./index.js')

/**
 * A `node:http` server forwarding to `origin` (`http://host:port`), or, for absolute-form
 * requests (a forward proxy), to the URL's own origin.
 */
function createProxy(options = {}) {
  const engine = options.engine ?? new Engine()
  const identity = options.identity ?? options.user ?? 'agent'
  const origin = options.origin ? new URL(options.origin) : null
  return http.createServer((req, res) => {
    let url
    try {
      url = origin ? new URL(req.url, origin) : new URL(req.url)
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('sluice: the request has no absolute URL and the proxy no origin\n')
      return
    }
    if (url.protocol !== 'http:') {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('sluice: only http:// origins are proxied here\n')
      return
    }
    const headers = {}
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v)
    const d = engine.check('http', `${req.method} ${url.href}`, {
      identity,
      target: options.target ?? url.hostname,
      headers,
      recorder: options.recorder,
    })
    if (d.decision !== 'allow') {
      res.writeHead(403, { 'content-type': 'text/plain', 'x-sluice-decision': d.decision })
      res.end(`sluice: ${d.decision}: ${d.reason}${d.rule ? ` [${d.rule}]` : ''}\n`)
      req.resume()
      return
    }
    delete headers['accept-encoding']
    delete headers['proxy-connection']
    headers.host = url.host
    const upstream = http.request(url, { method: req.method, headers: { ...headers, 'accept-encoding': 'identity' } }, (up) => {
      const out = { ...up.headers }
      delete out['content-length']
      delete out['content-encoding']
      res.writeHead(up.statusCode ?? 502, out)
      pipeline(up, engine.redactStream(), res, () => {})
    })
    upstream.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
      res.end(`sluice: upstream error: ${e.message}\n`)
    })
    pipeline(req, upstream, () => {})
  })
}

module.exports = { createProxy }
