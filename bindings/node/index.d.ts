// The `sluice` package's types: the addon's generated declarations (native.d.ts, made by
// `npm run build`) for the values, and the JavaScript wrapper's classes.
import type { Transform } from 'node:stream'
import type { CheckOptions, Decision, EngineOptions, Finding } from './native'

export type { Approver, CheckOptions, Decision, EngineOptions, Exchange, Finding, SessionOptions } from './native'
import type { Approver, Exchange, SessionOptions } from './native'

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
  check(protocol: 'shell' | 'sql' | 'http' | 'mcp' | 'ssh', command: string, options?: CheckOptions | null): Decision
  scanAsync(input: Input): Promise<Finding[]>
  redactAsync(input: Buffer | Uint8Array): Promise<Buffer>
  redactAsync(input: string): Promise<string>
  session(protocol: 'postgres' | 'mysql' | 'http' | 'mcp', options?: SessionOptions | null): Session
  streamRedactor(): StreamRedactor
  redactStream(): Transform
}
