'use strict'
// `sluice/ai`: a middleware for the Vercel AI SDK (`ai`): `wrapLanguageModel({ model,
// middleware: sluiceMiddleware({ engine }) })`.
//
// - Tool calls the model makes are decided by policy, as MCP `tools/call` requests (the tool's
//   name and arguments; the policy's `tools` maps shell and file tools to the shell and path
//   analysis): a call that is not allowed is replaced by text saying why, so it never runs.
// - Model output is masked: text, reasoning and tool-call arguments (streamed text through a
//   streaming redactor, so a secret split across deltas is still masked).
// - Tool results and every other text in the prompt are masked before they go to the model.

const { Engine } = require('./index.js')

function decide(engine, opts, toolName, input) {
  let args
  try {
    args = input === '' || input === undefined ? {} : JSON.parse(input)
  } catch {
    // Arguments that are not JSON: decided as what they are, a string.
    args = { input }
  }
  const message = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: toolName, arguments: args } }
  return engine.check('mcp', JSON.stringify(message), {
    identity: opts.identity ?? opts.user ?? 'agent',
    target: opts.target ?? 'ai',
    recorder: opts.recorder,
  })
}

/** Every string in a JSON-like value masked. */
function maskDeep(engine, v) {
  if (typeof v === 'string') return engine.redact(v)
  if (Array.isArray(v)) return v.map((x) => maskDeep(engine, x))
  if (v && typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof URL)) {
    const out = {}
    for (const [k, x] of Object.entries(v)) out[k] = maskDeep(engine, x)
    return out
  }
  return v
}

function refusal(toolName, d) {
  return `Sluice refused the tool call \`${toolName}\` (${d.decision}${d.rule ? `, ${d.rule}` : ''}): ${d.reason}`
}

function sluiceMiddleware(options = {}) {
  const engine = options.engine ?? new Engine()
  return {
    specificationVersion: 'v4',
    async transformParams({ params }) {
      return { ...params, prompt: maskDeep(engine, params.prompt) }
    },
    async wrapGenerate({ doGenerate }) {
      const result = await doGenerate()
      const content = []
      for (const part of result.content) {
        if (part.type === 'text' || part.type === 'reasoning') {
          content.push({ ...part, text: engine.redact(part.text) })
        } else if (part.type === 'tool-call' && !part.providerExecuted) {
          const d = decide(engine, options, part.toolName, part.input)
          content.push(d.decision === 'allow' ? { ...part, input: engine.redact(part.input) } : { type: 'text', text: refusal(part.toolName, d) })
        } else {
          content.push(part)
        }
      }
      const anyCall = content.some((p) => p.type === 'tool-call')
      const finishReason = !anyCall && result.finishReason?.unified === 'tool-calls'
        ? { ...result.finishReason, unified: 'stop' }
        : result.finishReason
      return { ...result, content, finishReason }
    },
    async wrapStream({ doStream }) {
      const { stream, ...rest } = await doStream()
      const texts = new Map() // id -> { redactor, decoder }
      const toolInputs = new Map() // id -> held tool-input-* parts
      let refused = 0
      let calls = 0
      const masker = (id) => {
        let t = texts.get(id)
        if (!t) {
          t = { redactor: engine.streamRedactor(), decoder: new TextDecoder() }
          texts.set(id, t)
        }
        return t
      }
      const transform = new TransformStream({
        transform(part, controller) {
          switch (part.type) {
            case 'text-delta':
            case 'reasoning-delta': {
              const t = masker(part.id)
              const delta = t.decoder.decode(t.redactor.feed(part.delta), { stream: true })
              if (delta) controller.enqueue({ ...part, delta })
              return
            }
            case 'text-end':
            case 'reasoning-end': {
              const t = texts.get(part.id)
              if (t) {
                const tail = t.decoder.decode(t.redactor.finish())
                if (tail) controller.enqueue({ type: part.type === 'text-end' ? 'text-delta' : 'reasoning-delta', id: part.id, delta: tail })
                texts.delete(part.id)
              }
              controller.enqueue(part)
              return
            }
            case 'tool-input-start':
            case 'tool-input-delta':
            case 'tool-input-end': {
              // Held until the call is complete and decided.
              const held = toolInputs.get(part.id) ?? []
              held.push(part)
              toolInputs.set(part.id, held)
              return
            }
            case 'tool-call': {
              const held = toolInputs.get(part.toolCallId) ?? []
              toolInputs.delete(part.toolCallId)
              if (part.providerExecuted) {
                held.forEach((p) => controller.enqueue(p))
                controller.enqueue(part)
                return
              }
              const d = decide(engine, options, part.toolName, part.input)
              if (d.decision === 'allow') {
                calls++
                held.forEach((p) => controller.enqueue(p.type === 'tool-input-delta' ? { ...p, delta: engine.redact(p.delta) } : p))
                controller.enqueue({ ...part, input: engine.redact(part.input) })
              } else {
                refused++
                const id = `sluice-refusal-${part.toolCallId}`
                controller.enqueue({ type: 'text-start', id })
                controller.enqueue({ type: 'text-delta', id, delta: refusal(part.toolName, d) })
                controller.enqueue({ type: 'text-end', id })
              }
              return
            }
            case 'finish': {
              const finishReason = refused > 0 && calls === 0 && part.finishReason?.unified === 'tool-calls'
                ? { ...part.finishReason, unified: 'stop' }
                : part.finishReason
              controller.enqueue({ ...part, finishReason })
              return
            }
            default:
              controller.enqueue(part)
          }
        },
      })
      return { ...rest, stream: stream.pipeThrough(transform) }
    },
  }
}

module.exports = { sluiceMiddleware }
