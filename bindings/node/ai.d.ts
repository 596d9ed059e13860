import type { Engine, Identity, Recorder } from './index'

export interface MiddlewareOptions {
  /** The engine (default: built-in rules, agent-safe policy). */
  engine?: Engine
  /** The acting user policy sees (default `agent`). */
  user?: string
  /** Who acts, instead of `user`: a name or an `Identity` (for example from `OidcVerifier`). */
  identity?: string | Identity
  /** Record every decision (and, for MCP, the output) of this connection. */
  recorder?: Recorder
  /** The target policy sees (default `ai`). */
  target?: string
}

/**
 * A Vercel AI SDK language-model middleware (`wrapLanguageModel({ model, middleware })`):
 * tool calls decided by policy, model output and tool results masked. Its type is the SDK's
 * `LanguageModelMiddleware`.
 */
export declare function sluiceMiddleware(options?: MiddlewareOptions): import('ai').LanguageModelMiddleware
