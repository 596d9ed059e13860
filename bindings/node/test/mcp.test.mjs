// An MCP server built with the real @modelcontextprotocol/sdk, guarded in-process by
// sluice/mcp, called by the SDK's own client over its in-memory transport.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { z } from 'zod'

import { Engine, GrantKey, replayRecording, verifyRecording } from '../index.mjs'
import { guardTransport } from '../mcp.mjs'

const stripeKey = () => {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  return 'sk_live_' + Array.from({ length: 24 }, () => a[randomInt(a.length)]).join('')
}

async function setup(engine, guard = { user: 'agent-7', target: 'devbox' }) {
  const secret = stripeKey()
  const ran = []
  const server = new McpServer({ name: 'devbox', version: '1.0.0' })
  server.registerTool('run_command', { description: 'run a shell command', inputSchema: { command: z.string() } },
    async ({ command }) => {
      ran.push(command)
      return { content: [{ type: 'text', text: `ran ${command}\nSTRIPE_KEY=${secret}\n` }] }
    })
  server.registerTool('drop_everything', { description: 'dangerous', inputSchema: {} }, async () => {
    ran.push('drop_everything')
    return { content: [{ type: 'text', text: 'dropped' }] }
  })
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await server.connect(guardTransport(serverSide, { engine, ...guard }))
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(clientSide)
  return { client, ran, secret, server }
}

test('a refused tool call never reaches the server; an allowed one comes back masked', async () => {
  const { client, ran, secret } = await setup(new Engine())
  let refused
  try {
    refused = await client.callTool({ name: 'run_command', arguments: { command: 'cat ~/.aws/credentials' } })
  } catch (e) {
    refused = e
  }
  const text = refused instanceof Error ? refused.message : JSON.stringify(refused)
  assert.ok(refused instanceof Error || refused.isError, text)
  assert.match(text, /credential/)
  assert.deepEqual(ran, [], 'the server never saw the refused call')

  const ok = await client.callTool({ name: 'run_command', arguments: { command: 'ls -la' } })
  assert.deepEqual(ran, ['ls -la'])
  const out = JSON.stringify(ok)
  assert.ok(!out.includes(secret), 'the secret never reaches the client')
  assert.match(out, /\[REDACTED:stripe-secret-key:/)
  await client.close()
})

test('tools/list is filtered by policy and a denied tool cannot be called', async () => {
  const policy = 'version: 1\nname: mcp-test\ndefault: allow\nrules:\n  - {id: no-drop, action: deny, message: not this tool, when: {mcp: {tools: [drop_everything]}}}\n'
  const { client, ran } = await setup(Engine.fromYaml(policy))
  const { tools } = await client.listTools()
  assert.deepEqual(tools.map((t) => t.name), ['run_command'])
  await assert.rejects(client.callTool({ name: 'drop_everything', arguments: {} }), /not this tool/)
  assert.deepEqual(ran, [])
  await client.close()
})

test('a guarded server with an identity and a recorder: every call recorded, signed, secret-free', async () => {
  const key = GrantKey.generateEd25519()
  const events = []
  const engine = new Engine({ onEvent: (e) => events.push(e) })
  const recorder = engine.recorder({ key, protocol: 'mcp', target: 'devbox' })
  const identity = { user: 'ann', groups: ['dev'] }
  const { client, secret } = await setup(engine, { identity, target: 'devbox', recorder })
  await client.callTool({ name: 'run_command', arguments: { command: 'ls -la' } })
  await client.callTool({ name: 'run_command', arguments: { command: 'cat ~/.aws/credentials' } }).catch(() => {})
  await client.close()
  recorder.close()
  const data = recorder.data()
  assert.equal(verifyRecording(data, { key }).ok, true)
  assert.ok(!data.includes(secret), 'no secret in the recording')
  const transcript = replayRecording(data)
  assert.match(transcript, /ann@devbox > .*ls -la/)
  assert.match(transcript, /DENY \[credential-files\]/)
  assert.ok(events.some((e) => e.event === 'decision' && e.user === 'ann' && e.decision === 'deny'))
  assert.ok(!JSON.stringify(events).includes(secret))
})
