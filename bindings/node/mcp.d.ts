import type { Engine, Identity, Recorder } from './index'

/** The server side of an MCP transport (the SDK's `Transport` shape). */
export interface McpTransport {
  start(): Promise<void>
  close(): Promise<void>
  send(message: unknown, options?: unknown): Promise<void>
  onclose?: () => void
  onerror?: (error: Error) => void
  onmessage?: (message: any, extra?: any) => void
  sessionId?: string
}

export interface GuardOptions {
  /** The engine (default: built-in rules, agent-safe policy). */
  engine?: Engine
  /** The acting user policy sees (default `agent`). */
  user?: string
  /** Who acts, instead of `user`: a name or an `Identity` (for example from `OidcVerifier`). */
  identity?: string | Identity
  /** Record every decision (and, for MCP, the output) of this connection. */
  recorder?: Recorder
  /** The target policy sees (default `mcp`). */
  target?: string
}

/** `transport` with every message through a Sluice MCP session: pass it to `server.connect()`. */
export declare function guardTransport<T extends McpTransport>(transport: T, options?: GuardOptions): McpTransport
