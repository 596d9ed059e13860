// sluice/ai with the real Vercel AI SDK (`ai`): generateText and streamText over the SDK's own
// mock language model (the model is the only stand-in), with tools that record whether they ran.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'

import { generateText, streamText, tool, wrapLanguageModel, jsonSchema, stepCountIs } from 'ai'
import { MockLanguageModelV4, convertArrayToReadableStream } from 'ai/test'

import { Engine } from '../index.mjs'
import { sluiceMiddleware } from '../ai.mjs'

const stripeKey = () => {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  return 'sk_live_' + Array.from({ length: 24 }, () => a[randomInt(a.length)]).join('')
}
const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } }

function tools(ran, secret) {
  return {
    run_command: tool({
      description: 'run a shell command',
      inputSchema: jsonSchema({ type: 'object', properties: { command: { type: 'string' } }, required: ['command'] }),
      execute: async ({ command }) => {
        ran.push(command)
        return `output of ${command}\nSTRIPE_KEY=${secret}`
      },
    }),
  }
}

test('generateText: a denied tool call never runs; model text is masked; tool results reach the model masked', async () => {
  const secret = stripeKey()
  const ran = []
  const model = new MockLanguageModelV4({
    doGenerate: [
      { content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'run_command', input: JSON.stringify({ command: 'cat ~/.aws/credentials' }) }],
        finishReason: { unified: 'tool-calls', raw: 'tool_use' }, usage, warnings: [] },
    ],
  })
  const r = await generateText({ model: wrapLanguageModel({ model, middleware: sluiceMiddleware({ engine: new Engine() }) }),
    prompt: 'go', tools: tools(ran, secret) })
  assert.deepEqual(ran, [])
  assert.match(r.text, /Sluice refused the tool call `run_command`.*credential/)

  const model2 = new MockLanguageModelV4({
    doGenerate: [
      { content: [{ type: 'tool-call', toolCallId: 'c2', toolName: 'run_command', input: JSON.stringify({ command: 'ls' }) }],
        finishReason: { unified: 'tool-calls', raw: 'tool_use' }, usage, warnings: [] },
      { content: [{ type: 'text', text: `done; the key is ${secret}` }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] },
    ],
  })
  const r2 = await generateText({ model: wrapLanguageModel({ model: model2, middleware: sluiceMiddleware() }),
    prompt: 'go', tools: tools(ran, secret), stopWhen: stepCountIs(3) })
  assert.deepEqual(ran, ['ls'])
  assert.ok(!r2.text.includes(secret) && r2.text.includes('[REDACTED:stripe-secret-key:'))
  // What the model was sent on its second call (the tool's result) held no secret.
  assert.ok(!JSON.stringify(model2.doGenerateCalls[1].prompt).includes(secret))
  assert.match(JSON.stringify(model2.doGenerateCalls[1].prompt), /REDACTED:stripe-secret-key/)
})

test('streamText: a secret split across deltas is masked; a denied streamed tool call is replaced by the refusal', async () => {
  const secret = stripeKey()
  const ran = []
  const cut = 13
  const model = new MockLanguageModelV4({
    doStream: {
      stream: convertArrayToReadableStream([
        { type: 'text-start', id: 't' },
        { type: 'text-delta', id: 't', delta: `key: ${secret.slice(0, cut)}` },
        { type: 'text-delta', id: 't', delta: `${secret.slice(cut)} end` },
        { type: 'text-end', id: 't' },
        { type: 'tool-input-start', id: 'c3', toolName: 'run_command' },
        { type: 'tool-input-delta', id: 'c3', delta: '{"command":"printenv"}' },
        { type: 'tool-input-end', id: 'c3' },
        { type: 'tool-call', toolCallId: 'c3', toolName: 'run_command', input: '{"command":"printenv"}' },
        { type: 'finish', finishReason: { unified: 'tool-calls', raw: 'tool_use' }, usage },
      ]),
    },
  })
  const r = streamText({ model: wrapLanguageModel({ model, middleware: sluiceMiddleware() }), prompt: 'go', tools: tools(ran, secret) })
  let text = ''
  for await (const t of r.textStream) text += t
  assert.deepEqual(ran, [])
  assert.ok(!text.includes(secret), text)
  assert.match(text, /^key: \[REDACTED:stripe-secret-key:[0-9a-f]+\] end/)
  assert.match(text, /Sluice refused the tool call `run_command`/)
})
