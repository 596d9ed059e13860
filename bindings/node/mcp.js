'use strict'
// `sluice/mcp`: an MCP server built with @modelcontextprotocol/sdk, guarded in-process.
//
// `guardTransport(transport, options)` wraps the server's transport, so that every message
// crosses a Sluice MCP session: a client request is decided by policy before the server sees it
// (a refusal is answered to the client, the server never gets the request), `tools/list` is
// filtered to what policy lets through, a grant in `_meta` lets an approved call through once,
// and everything the server sends is masked. Pass the result to `server.connect()`.

const { Engine } = require('./index.js')

/** The JSON-RPC messages in a session's output: one per line. */
function messages(buf) {
  return buf
    .toString('utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))
}

function guardTransport(transport, options = {}) {
  const engine = options.engine ?? new Engine()
  const session = engine.session('mcp', {
    identity: options.identity ?? options.user ?? 'agent',
    target: options.target ?? 'mcp',
    recorder: options.recorder,
  })
  const fail = (e) => {
    guarded.onerror?.(e)
    // A session error means the connection can no longer be trusted: close it.
    transport.close().catch(() => {})
  }
  const guarded = {
    onclose: undefined,
    onerror: undefined,
    onmessage: undefined,
    get sessionId() {
      return transport.sessionId
    },
    start() {
      return transport.start()
    },
    close() {
      return transport.close()
    },
    async send(message, sendOptions) {
      let ex
      try {
        ex = session.serverMessage(message)
      } catch (e) {
        fail(e)
        throw e
      }
      for (const m of messages(ex.toClient)) await transport.send(m, sendOptions)
    },
  }
  transport.onmessage = (message, extra) => {
    let ex
    try {
      ex = session.clientMessage(message)
    } catch (e) {
      fail(e)
      return
    }
    for (const m of messages(ex.toServer)) guarded.onmessage?.(m, extra)
    for (const m of messages(ex.toClient)) transport.send(m).catch(fail)
  }
  transport.onclose = () => guarded.onclose?.()
  transport.onerror = (e) => guarded.onerror?.(e)
  return guarded
}

module.exports = { guardTransport }
