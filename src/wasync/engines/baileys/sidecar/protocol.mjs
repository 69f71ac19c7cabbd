// JSON lines on stdin/stdout between wasync (Python) and this sidecar.
//
// Python -> sidecar: {"type":"req","id":7,"op":"history","args":{...}}
// sidecar -> Python: {"type":"res","id":7,"ok":true,"result":...}
//                    {"type":"res","id":7,"ok":false,"error":"...","status":404}
//                    {"type":"ev","name":"messages","data":{...}}
// sidecar -> Python requests (auth state writes) use string ids ("s1", "s2", ...) and
// Python answers them with {"type":"res","id":"s1","ok":true}.
//
// stdout carries only protocol lines; every log line goes to stderr.
import { createInterface } from 'node:readline'

const pending = new Map()
let nextCall = 1
const handlers = new Map()

export function send (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

export function emit (name, data) {
  send({ type: 'ev', name, data })
}

export function log (level, message) {
  // Never log keys, creds or message bodies: only what helps someone operate it.
  process.stderr.write(JSON.stringify({ level, msg: message, src: 'sidecar' }) + '\n')
}

export function on (op, fn) {
  handlers.set(op, fn)
}

// Ask Python for something and wait for its answer (auth state writes).
export function call (op, args) {
  const id = `s${nextCall++}`
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject })
    send({ type: 'req', id, op, args })
  })
}

function failure (err) {
  const status = err?.output?.statusCode ?? (typeof err?.data === 'number' ? err.data : undefined)
  return {
    error: String(err?.message || err || 'unknown error'),
    status: typeof status === 'number' ? status : null
  }
}

async function dispatch (msg) {
  if (msg.type === 'res') {
    const waiting = pending.get(msg.id)
    if (!waiting) return
    pending.delete(msg.id)
    if (msg.ok) waiting.resolve(msg.result)
    else waiting.reject(new Error(msg.error || 'python refused'))
    return
  }
  if (msg.type !== 'req') return
  const fn = handlers.get(msg.op)
  if (!fn) {
    send({ type: 'res', id: msg.id, ok: false, error: `unknown operation ${msg.op}`, status: null })
    return
  }
  try {
    const result = await fn(msg.args || {})
    send({ type: 'res', id: msg.id, ok: true, result: result ?? null })
  } catch (err) {
    send({ type: 'res', id: msg.id, ok: false, ...failure(err) })
  }
}

export function listen (onEnd) {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  lines.on('line', (line) => {
    if (!line.trim()) return
    let msg
    try {
      msg = JSON.parse(line)
    } catch {
      log('error', 'a line from wasync is not JSON; ignored')
      return
    }
    dispatch(msg).catch((err) => log('error', `handling ${msg.op || msg.type} failed: ${err?.message}`))
  })
  // wasync went away (or closed our stdin to stop us): nothing is left to serve.
  lines.on('close', onEnd)
}
