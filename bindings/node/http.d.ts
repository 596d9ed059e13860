import type { Server } from 'node:http'
import type { Engine } from './index'

export interface ProxyOptions {
  /** The engine (default: built-in rules, agent-safe policy). */
  engine?: Engine
  /** Where requests go (`http://host:port`); without it, absolute-form requests go to their own origin. */
  origin?: string
  /** The acting user policy sees (default `agent`). */
  user?: string
  /** The target policy sees (default: the origin's host name). */
  target?: string
}

/** An HTTP proxy on `node:http`: requests decided by policy, response bodies masked. */
export declare function createProxy(options?: ProxyOptions): Server
