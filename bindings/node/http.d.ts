import type { Server } from 'node:http'
import type { Engine, Identity, Recorder } from './index'

export interface ProxyOptions {
  /** The engine (default: built-in rules, agent-safe policy). */
  engine?: Engine
  /** Where requests go (`http://host:port`); without it, absolute-form requests go to their own origin. */
  origin?: string
  /** The acting user policy sees (default `agent`). */
  user?: string
  /** Who acts, instead of `user`: a name or an `Identity` (for example from `OidcVerifier`). */
  identity?: string | Identity
  /** Record every decision (and, for MCP, the output) of this connection. */
  recorder?: Recorder
  /** The target policy sees (default: the origin's host name). */
  target?: string
}

/** An HTTP proxy on `node:http`: requests decided by policy, response bodies masked. */
export declare function createProxy(options?: ProxyOptions): Server
