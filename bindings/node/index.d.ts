// The `sluice` package's types: the addon's generated declarations (native.d.ts, made by
// `npm run build`) for the values, and the JavaScript wrapper's classes.
import type { Transform } from 'node:stream'
import type {
  Approver,
  CheckOptions as NativeCheckOptions,
  Decision,
  EngineOptions as NativeEngineOptions,
  Exchange,
  Finding,
  Identity,
  OidcOptions,
  RecorderOptions as NativeRecorderOptions,
  RecordingReport,
  SessionOptions as NativeSessionOptions,
  Substitution,
  Target,
} from './native'

export type {
  Approver,
  Decision,
  Exchange,
  Finding,
  Identity,
  OidcOptions,
  RecordingProblem,
  RecordingReport,
  Substitution,
  Target,
} from './native'

/** A session event: a decision, a masking count or a notice (see the README). */
export interface SluiceEvent {
  event: 'decision' | 'masked' | 'notice' | string
  protocol: string
  [field: string]: unknown
}

/** Options for `new Engine(options)`. */
export interface EngineOptions extends Omit<NativeEngineOptions, 'events' | 'grantKey'> {
  /** The key that verifies grants: a `GrantKey` or its text (or its public half's). */
  grantKey?: GrantKey | string
  /** Given each session event, in order, before the call that caused it returns. */
  onEvent?: (event: SluiceEvent) => void
}

/** Options for `engine.check(...)`. */
export interface CheckOptions extends NativeCheckOptions {
  /** Record the decision (a command that cannot be recorded is refused). */
  recorder?: Recorder
}

/** Options for `engine.session(...)`. */
export interface SessionOptions extends NativeSessionOptions {
  /** Record every decision, masking count and output of the session. */
  recorder?: Recorder
}

/** Options for `engine.recorder(...)`. */
export interface RecorderOptions extends Omit<NativeRecorderOptions, 'key' | 'path' | 'queue'> {
  /** The Ed25519 secret key that signs: a `GrantKey` or its text. */
  key: GrantKey | string
  /** A path (created new), a function taking each record, or nothing (memory). */
  to?: string | ((record: Buffer) => void | Promise<void>)
}

/** An MCP tool call as `check` takes it. */
export interface ToolCall {
  name: string
  arguments?: Record<string, unknown>
}

/** Bytes (read in place) or text. */
export type Input = Uint8Array | string

/** Base class of every error Sluice throws. */
export declare class SluiceError extends Error {
  readonly code: string
  readonly rule: string | null
  readonly line: number | null
  readonly column: number | null
  readonly origin: string | null
}
export declare class RuleError extends SluiceError {}
export declare class PolicyError extends SluiceError {}
export declare class RequestError extends SluiceError {}
export declare class LimitError extends SluiceError {}
export declare class GrantError extends SluiceError {}
export declare class OidcError extends SluiceError {
  /** KeySet, Malformed, Algorithm, NoKey, Rejected or Claims. */
  readonly kind: string | null
}
export declare class RecordingError extends SluiceError {}
export declare class SessionError extends SluiceError {}

/** Verifies OIDC ID tokens (RS256, ES256, EdDSA) against a JWKS document. */
export declare class OidcVerifier {
  constructor(jwks: string | object, options: OidcOptions)
  verify(token: string): Identity
}

/** One session's recording: an append-only, hash-chained, signed log (JSON Lines). */
export declare class Recorder {
  readonly sessionId: string
  readonly failure: string | null
  data(): Buffer
  notice(message: string, options?: { protocol?: string }): void
  tick(): void
  close(): void
}

/** A recording: a path or bytes, or a list of them (a rotated recording's parts in order). */
export type RecordingInput = string | Uint8Array | Array<string | Uint8Array>

export declare function verifyRecording(recording: RecordingInput, options?: { key?: GrantKey | string | null }): RecordingReport
export declare function replayRecording(recording: RecordingInput): string
export declare function exportAsciicast(recording: RecordingInput, options?: { width?: number; height?: number }): string

/** A key that signs (and verifies) single-use grants for approved commands. */
export declare class GrantKey {
  static generateEd25519(): GrantKey
  static generateHmac(): GrantKey
  static parse(text: string): GrantKey
  toText(): string
  publicText(): string | null
  issue(request: object, approvers: Array<string | Approver>): string
}

export declare class StreamRedactor {
  feed(chunk: Input): Buffer
  finish(): Buffer
}

/** One connection's enforcement: feed what each side sent, write what comes back. */
export declare class Session {
  readonly protocol: string
  readonly closed: boolean
  fromClient(data: Input): Exchange
  fromServer(data: Input): Exchange
  clientMessage(message: string | object): Exchange
  serverMessage(message: string | object): Exchange
}

export declare class Engine {
  constructor(options?: EngineOptions | null)
  static fromYaml(text: string, options?: EngineOptions | null): Engine
  static fromFile(path: string, options?: EngineOptions | null): Engine
  get policyName(): string
  scan(input: Input): Finding[]
  redact(input: Buffer | Uint8Array): Buffer
  redact(input: string): string
  check(protocol: 'shell' | 'sql' | 'http' | 'ssh', command: string, options?: CheckOptions | null): Decision
  check(protocol: 'mcp', command: string | ToolCall | object, options?: CheckOptions | null): Decision
  roles(identity: string | Identity): string[]
  substitute(text: string, options: { allowed: string[] | ((name: string) => boolean) }): Substitution
  setCredential(name: string, value: string | Uint8Array): void
  recorder(options: RecorderOptions): Recorder
  scanAsync(input: Input): Promise<Finding[]>
  redactAsync(input: Buffer | Uint8Array): Promise<Buffer>
  redactAsync(input: string): Promise<string>
  session(protocol: 'postgres' | 'mysql' | 'http' | 'mcp', options?: SessionOptions | null): Session
  streamRedactor(): StreamRedactor
  redactStream(): Transform
}
