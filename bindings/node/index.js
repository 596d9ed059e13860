'use strict'
// The `sluice` package: the native addon (built from source by `npm run build`) with the
// JavaScript around it: errors as `SluiceError` subclasses, and `engine.redactStream()`, a
// `Transform` for `pipe` / `pipeline`.

const { Transform } = require('node:stream')

const native = require('./sluice.node')

/** Base class of every error Sluice throws: `code`, and where known `rule`, `line`, `column`, `origin`. */
class SluiceError extends Error {
  constructor(message, fields = {}) {
    super(message)
    this.name = this.constructor.name
    this.code = fields.code ?? 'SLUICE_ERROR'
    for (const k of ['rule', 'line', 'column', 'origin']) {
      this[k] = fields[k] ?? null
    }
  }
}
/** A rule file or pattern is invalid. */
class RuleError extends SluiceError {}
/** A policy document is invalid. */
class PolicyError extends SluiceError {}
/** A request cannot be decided as given (unknown protocol, dialect, …). */
class RequestError extends SluiceError {}
/** A limit was exceeded. */
class LimitError extends SluiceError {}
/** A grant or grant key is invalid. */
class GrantError extends SluiceError {}

const CLASSES = {
  SLUICE_RULE: RuleError,
  SLUICE_POLICY: PolicyError,
  SLUICE_REQUEST: RequestError,
  SLUICE_LIMIT: LimitError,
  SLUICE_GRANT: GrantError,
}

/** Runs a native call, turning its errors into `SluiceError`s. */
function call(f) {
  try {
    return f()
  } catch (e) {
    if (e && typeof e.code === 'string' && e.code.startsWith('SLUICE_')) {
      let fields = {}
      try {
        fields = JSON.parse(e.message)
      } catch {
        fields = { message: e.message }
      }
      const Cls = CLASSES[e.code] ?? SluiceError
      throw new Cls(fields.message, { ...fields, code: e.code })
    }
    throw e
  }
}

/** Runs a native call returning a promise, turning its errors (thrown or rejected) into `SluiceError`s. */
async function callAsync(f) {
  try {
    return await f()
  } catch (e) {
    return call(() => {
      throw e
    })
  }
}

/** One connection's enforcement: feed what each side sent, write what comes back. */
class Session {
  constructor(inner) {
    this._inner = inner
  }
  get protocol() {
    return this._inner.protocol
  }
  get closed() {
    return this._inner.closed
  }
  /** Bytes the client sent: `{ toServer, toClient }`. */
  fromClient(data) {
    return call(() => this._inner.fromClient(data))
  }
  /** Bytes the server sent: `{ toServer, toClient }`. */
  fromServer(data) {
    return call(() => this._inner.fromServer(data))
  }
  /** One MCP JSON-RPC message from the client (an object or its JSON). */
  clientMessage(message) {
    return call(() => this._inner.clientMessage(typeof message === 'string' ? message : JSON.stringify(message)))
  }
  /** One MCP JSON-RPC message from the server (an object or its JSON). */
  serverMessage(message) {
    return call(() => this._inner.serverMessage(typeof message === 'string' ? message : JSON.stringify(message)))
  }
}

/** A key that signs (and verifies) single-use grants for approved commands. */
class GrantKey {
  constructor(inner) {
    this._inner = inner
  }
  static generateEd25519() {
    return new GrantKey(native.GrantKey.generateEd25519())
  }
  static generateHmac() {
    return new GrantKey(native.GrantKey.generateHmac())
  }
  static parse(text) {
    return new GrantKey(call(() => native.GrantKey.parse(text)))
  }
  toText() {
    return this._inner.toText()
  }
  publicText() {
    return this._inner.publicText()
  }
  /** A grant for the approval request of a `require_approval` decision, by `approvers`. */
  issue(request, approvers) {
    return call(() => this._inner.issue(request, approvers))
  }
}

class StreamRedactor {
  constructor(inner) {
    this._inner = inner
  }
  /** Masks a chunk: returns the bytes that are now safe to pass on. */
  feed(chunk) {
    return call(() => this._inner.feed(chunk))
  }
  /** Ends the stream: returns what was held back. */
  finish() {
    return call(() => this._inner.finish())
  }
}

class Engine {
  constructor(options) {
    this._native = options instanceof native.Engine ? options : call(() => new native.Engine(options))
  }
  /** An engine with the policy in `text` (YAML or JSON). */
  static fromYaml(text, options) {
    return new Engine(call(() => native.Engine.fromYaml(text, options)))
  }
  /** An engine with the policy in the file at `path`. */
  static fromFile(path, options) {
    return new Engine(call(() => native.Engine.fromFile(path, options)))
  }
  get policyName() {
    return this._native.policyName
  }
  /** Every secret in `input` (a Buffer or Uint8Array, read in place, or a string). */
  scan(input) {
    return call(() => this._native.scan(input))
  }
  /** `input` with every secret replaced by its placeholder, of the same type. */
  redact(input) {
    return call(() => this._native.redact(input))
  }
  /** Decides on a command. */
  check(protocol, command, options) {
    return call(() => this._native.check(protocol, command, options))
  }
  /** `scan` off the JavaScript thread (the input is copied first). */
  scanAsync(input) {
    return callAsync(() => this._native.scanAsync(input))
  }
  /** `redact` off the JavaScript thread; resolves to the input's type. */
  redactAsync(input) {
    return callAsync(() => this._native.redactAsync(input))
  }
  /** A protocol session for one connection: postgres, mysql, http or mcp. */
  session(protocol, options) {
    return new Session(call(() => this._native.session(protocol, options)))
  }
  /** A redactor for a stream of chunks. */
  streamRedactor() {
    return new StreamRedactor(this._native.streamRedactor())
  }
  /** A `Transform` that masks every secret of what flows through it, across chunk boundaries. */
  redactStream() {
    const r = this._native.streamRedactor()
    return new Transform({
      transform(chunk, _enc, done) {
        try {
          done(null, r.feed(chunk))
        } catch (e) {
          done(e)
        }
      },
      flush(done) {
        try {
          done(null, r.finish())
        } catch (e) {
          done(e)
        }
      },
    })
  }
}

module.exports = { Engine, GrantKey, Session, StreamRedactor, SluiceError, RuleError, PolicyError, RequestError, LimitError, GrantError }
