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
/** An OIDC token or key set was rejected (`kind` says how). */
class OidcError extends SluiceError {
  constructor(message, fields = {}) {
    super(message, fields)
    this.kind = fields.kind ?? null
  }
}
/** A recording could not be started, written, closed or read. */
class RecordingError extends SluiceError {}
/** A session met input it refuses to go on with: the host closes the connection. */
class SessionError extends SluiceError {}

const CLASSES = {
  SLUICE_RULE: RuleError,
  SLUICE_POLICY: PolicyError,
  SLUICE_REQUEST: RequestError,
  SLUICE_LIMIT: LimitError,
  SLUICE_GRANT: GrantError,
  SLUICE_OIDC: OidcError,
  SLUICE_RECORDING: RecordingError,
  SLUICE_SESSION: SessionError,
}

/** A host callback (`onEvent`, a record function) threw: reported, never lost, never fatal. */
function warn(what, e) {
  process.emitWarning(`${what} threw: ${e && e.stack ? e.stack : e}`, { type: 'SluiceWarning' })
}

/** The native form of a key given as a `GrantKey` or its text. */
function keyText(key) {
  if (key instanceof GrantKey) return key.toText()
  if (typeof key === 'string') return key
  throw new TypeError('key: a GrantKey or the text of one')
}

/** The native recorder of an options object's `recorder`, checked. */
function nativeRecorder(recorder) {
  if (recorder === undefined || recorder === null) return null
  if (!(recorder instanceof Recorder)) throw new TypeError('recorder: a Recorder from engine.recorder()')
  return recorder._inner
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
  constructor(inner, engine, recorder) {
    this._inner = inner
    this._engine = engine
    this._recorder = recorder
  }
  get protocol() {
    return this._inner.protocol
  }
  get closed() {
    return this._inner.closed
  }
  /** Bytes the client sent: `{ toServer, toClient }`. */
  fromClient(data) {
    return this._engine._run(this._recorder, () => this._inner.fromClient(data))
  }
  /** Bytes the server sent: `{ toServer, toClient }`. */
  fromServer(data) {
    return this._engine._run(this._recorder, () => this._inner.fromServer(data))
  }
  /** One MCP JSON-RPC message from the client (an object or its JSON). */
  clientMessage(message) {
    const text = typeof message === 'string' ? message : JSON.stringify(message)
    return this._engine._run(this._recorder, () => this._inner.clientMessage(text))
  }
  /** One MCP JSON-RPC message from the server (an object or its JSON). */
  serverMessage(message) {
    const text = typeof message === 'string' ? message : JSON.stringify(message)
    return this._engine._run(this._recorder, () => this._inner.serverMessage(text))
  }
}

/**
 * One session's recording: an append-only, hash-chained, signed log (JSON Lines). Records
 * for a function are handed to it as soon as the call that wrote them returns; if it throws
 * (or its promise rejects), recording stops and, failing closed, new commands are refused.
 */
class Recorder {
  constructor(inner, fn) {
    this._inner = inner
    this._fn = fn
  }
  /** The session id (the first record's). */
  get sessionId() {
    return this._inner.sessionId
  }
  /** Why recording stopped (the sink failed, or it was closed), else null. */
  get failure() {
    return this._inner.failure ?? null
  }
  /** What an in-memory recording holds so far (JSON Lines). */
  data() {
    return call(() => this._inner.data())
  }
  /** Records something notable that is not a decision (masked like the rest). */
  notice(message, { protocol } = {}) {
    this._inner.notice(String(message), protocol)
    this._drain()
  }
  /** Writes a checkpoint or a new part that time has made due (call it now and then). */
  tick() {
    this._inner.tick()
    this._drain()
  }
  /**
   * Ends the recording: an `end` record and a final signed checkpoint, synced. Throws a
   * `RecordingError` if recording had failed. Closing twice does nothing.
   */
  close() {
    let failed = null
    try {
      call(() => this._inner.close())
    } finally {
      failed = this._drain()
    }
    if (failed) throw new RecordingError(`the record function failed: ${failed}`, { code: 'SLUICE_RECORDING' })
  }
  /** Hands queued records to the function; returns why it failed, if it did. */
  _drain() {
    if (!this._fn) return null
    for (const record of this._inner.takeRecords()) {
      try {
        const r = this._fn(record)
        if (r && typeof r.then === 'function') {
          r.then(undefined, (e) => {
            this._inner.fail(String(e && e.message ? e.message : e))
            warn('the record function', e)
          })
        }
      } catch (e) {
        const why = String(e && e.message ? e.message : e)
        this._inner.fail(why)
        warn('the record function', e)
        return why
      }
    }
    return null
  }
}
if (typeof Symbol.dispose === 'symbol') {
  Recorder.prototype[Symbol.dispose] = function () {
    this.close()
  }
}

/** Verifies OIDC ID tokens (RS256, ES256, EdDSA) against a JWKS document. */
class OidcVerifier {
  /** `jwks`: the key set (object or JSON text); `options`: `{ issuer, audience, userClaim, groupsClaim, leeway }`. */
  constructor(jwks, options) {
    const text = typeof jwks === 'string' ? jwks : JSON.stringify(jwks)
    this._inner = call(() => new native.OidcVerifier(text, options))
  }
  /** The identity a valid token establishes: `{ user, groups, attributes }`; throws `OidcError` otherwise. */
  verify(token) {
    return call(() => this._inner.verify(token))
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

/** Splits the wrapper's options (`onEvent`) from the native ones. */
function engineOptions(options) {
  const { onEvent, ...rest } = options ?? {}
  if (onEvent !== undefined && onEvent !== null && typeof onEvent !== 'function') {
    throw new TypeError('onEvent must be a function')
  }
  if (rest.grantKey instanceof GrantKey) rest.grantKey = rest.grantKey.toText()
  return [{ ...rest, events: typeof onEvent === 'function' }, onEvent ?? null]
}

class Engine {
  /**
   * The built-in rules and the embedded agent-safe policy, or as `options` say: `rules`,
   * `builtinRules`, `policy`, `grantKey`, `replayStore`, `knownValues`, `credentials`, and
   * `onEvent`, a function given each session event (decisions, masking) as an object, in
   * order, before the call that caused it returns.
   */
  constructor(options) {
    if (options instanceof native.Engine) {
      this._native = options
      this._onEvent = null
      return
    }
    const [opts, onEvent] = engineOptions(options)
    this._native = call(() => new native.Engine(opts))
    this._onEvent = onEvent
  }
  static _wrap(nativeEngine, onEvent) {
    const e = new Engine(nativeEngine)
    e._onEvent = onEvent
    return e
  }
  /** An engine with the policy in `text` (YAML or JSON). */
  static fromYaml(text, options) {
    const [opts, onEvent] = engineOptions(options)
    return Engine._wrap(call(() => native.Engine.fromYaml(text, opts)), onEvent)
  }
  /** An engine with the policy in the file at `path`. */
  static fromFile(path, options) {
    const [opts, onEvent] = engineOptions(options)
    return Engine._wrap(call(() => native.Engine.fromFile(path, opts)), onEvent)
  }
  /** Runs a native call, then hands its events to `onEvent` and its records to `recorder`'s function. */
  _run(recorder, f) {
    try {
      return call(f)
    } finally {
      this._deliver()
      if (recorder) recorder._drain()
    }
  }
  _deliver() {
    if (!this._onEvent) return
    for (const text of this._native.takeEvents()) {
      try {
        this._onEvent(JSON.parse(text))
      } catch (e) {
        warn('onEvent', e)
      }
    }
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
  /**
   * Decides on a command: `protocol` is shell, sql, http (`"METHOD URL"`), mcp (a JSON-RPC
   * message as text or object, or `{ name, arguments }` for a tool call) or ssh. Options:
   * `identity` (or `user`, `groups`, `attributes`), `target` (with `labels`), `grant`,
   * `dialect`, `headers`, `body`, `ssh`, and `recorder` to record the decision.
   */
  check(protocol, command, options) {
    const { recorder, ...rest } = options ?? {}
    const rec = nativeRecorder(recorder)
    let text = command
    if (protocol === 'mcp' && command !== null && typeof command === 'object') {
      const msg = 'jsonrpc' in command ? command : { jsonrpc: '2.0', id: 0, method: 'tools/call', params: command }
      text = JSON.stringify(msg)
    } else if (typeof command !== 'string') {
      throw new TypeError('command must be a string (or, for mcp, an object: a JSON-RPC message or { name, arguments })')
    }
    return this._run(recorder, () => this._native.check(protocol, text, rest, rec))
  }
  /** The roles the policy gives `identity` (a user name or `{ user, groups, attributes }`). */
  roles(identity) {
    return call(() => this._native.roles(identity))
  }
  /**
   * Swaps each placeholder `sluice:secret/NAME` in `text` for the credential held under NAME
   * when `allowed` (a list of names, or a function taking a name) lets it go where `text`
   * goes: `{ text, used }`. A placeholder not allowed or not held throws `RequestError`
   * naming it (never a value), and nothing is substituted.
   */
  substitute(text, { allowed } = {}) {
    let names
    if (typeof allowed === 'function') {
      names = [...new Set(this._native.placeholders(text))].filter((n) => allowed(n))
    } else if (Array.isArray(allowed)) {
      names = allowed
    } else {
      throw new TypeError('allowed: a list of names or a function taking a name')
    }
    return call(() => this._native.substitute(text, names))
  }
  /** Rotates a credential: substitution uses `value` from now on; echoes of old and new values stay masked. */
  setCredential(name, value) {
    return call(() => this._native.setCredential(name, value))
  }
  /**
   * Starts a session recording signed with `key` (an Ed25519 `GrantKey` or its text), to `to`:
   * a path (created new), a function taking each record (a Buffer), or nothing (memory:
   * `recorder.data()`). Other options: `protocol`, `user`, `target`, `sessionId`, `fsync`,
   * `checkpointEvery`, `checkpointInterval`, `rotateBytes`, `rotateInterval`, `failClosed`.
   */
  recorder(options) {
    const { to, key, ...rest } = options ?? {}
    if (to !== undefined && to !== null && typeof to !== 'function' && typeof to !== 'string') {
      throw new TypeError('to: a path, a function taking each record, or nothing (memory)')
    }
    const fn = typeof to === 'function' ? to : null
    const opts = { ...rest, key: keyText(key), path: typeof to === 'string' ? to : undefined, queue: fn !== null }
    const r = new Recorder(call(() => this._native.recorder(opts)), fn)
    r._drain()
    return r
  }
  /** `scan` off the JavaScript thread (the input is copied first). */
  scanAsync(input) {
    return callAsync(() => this._native.scanAsync(input))
  }
  /** `redact` off the JavaScript thread; resolves to the input's type. */
  redactAsync(input) {
    return callAsync(() => this._native.redactAsync(input))
  }
  /**
   * A protocol session for one connection: postgres, mysql, http or mcp. Options: `identity`
   * (or `user`), `target`, and `recorder` to record every decision, masking count and output.
   */
  session(protocol, options) {
    const { recorder, ...rest } = options ?? {}
    const rec = nativeRecorder(recorder)
    return new Session(call(() => this._native.session(protocol, rest, rec)), this, recorder ?? null)
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

/** The bytes of each part: a path or bytes, or a list of them (a rotated recording's parts). */
function recordingParts(recording) {
  return Array.isArray(recording) ? recording : [recording]
}

/** Verifies a recording: the hash chain, order, signatures (against `key` when given), that it is closed. */
function verifyRecording(recording, { key } = {}) {
  return call(() => native.verifyRecording(recordingParts(recording), key === undefined || key === null ? null : keyText(key)))
}

/** A recording as a readable transcript (database output decoded into rows). */
function replayRecording(recording) {
  return call(() => native.replayRecording(recordingParts(recording)))
}

/** A shell or SSH recording as asciicast v2 (`asciinema play`). */
function exportAsciicast(recording, { width, height } = {}) {
  return call(() => native.exportAsciicast(recordingParts(recording), width, height))
}

module.exports = {
  Engine,
  GrantKey,
  OidcVerifier,
  Recorder,
  Session,
  StreamRedactor,
  verifyRecording,
  replayRecording,
  exportAsciicast,
  SluiceError,
  RuleError,
  PolicyError,
  RequestError,
  LimitError,
  GrantError,
  OidcError,
  RecordingError,
  SessionError,
}
