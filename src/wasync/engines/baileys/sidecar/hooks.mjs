// Test-only hooks: OFF unless the environment sets WASYNC_BAILEYS_TEST_HOOKS=1.
//
// wasync's tests drive this sidecar without a network. With the hooks on:
// - `test.upsert` hands a WebMessageInfo (base64, built with Baileys' own `proto`) to
//   the socket's `upsertMessage`, the function Baileys calls for every message it
//   decrypts: the message then takes Baileys' real path (history notifications are
//   inflated and processed, edits and revokes handled) and reaches wasync as the
//   events a phone would cause.
// - `test.emit` emits one Baileys event (those that come from other protocol nodes:
//   connection updates, groups, contacts, LID mappings) on the socket's emitter.
// - a history request is recorded instead of sent (sending needs WhatsApp's servers):
//   `test.requests` lists them, with the id the answer must carry.
// Without the flag none of this exists, and `test.*` operations are unknown.
import { randomBytes } from 'node:crypto'
import { BufferJSON, proto } from 'baileys'
import { on } from './protocol.mjs'

export const enabled = process.env.WASYNC_BAILEYS_TEST_HOOKS === '1'

export function makeHooks () {
  let sock = null
  const requests = []
  const hooks = {
    attach (s) {
      sock = s
    },
    fetchMessageHistory (s, count, key, timestamp) {
      if (!enabled) return s.fetchMessageHistory(count, key, timestamp)
      const requestId = '3EB0' + randomBytes(8).toString('hex').toUpperCase()
      requests.push({ requestId, count, key, timestamp })
      return requestId
    }
  }
  if (!enabled) return hooks
  const live = () => {
    if (!sock) throw new Error('no socket: call start first')
    return sock
  }
  on('test.upsert', async ({ proto: data, type, alt }) => {
    const msg = proto.WebMessageInfo.decode(Buffer.from(data, 'base64'))
    Object.assign(msg.key, alt || {})
    await live().upsertMessage(msg, type || 'notify')
    return {}
  })
  on('test.emit', async ({ event, data }) => {
    live().ev.emit(event, JSON.parse(JSON.stringify(data), BufferJSON.reviver))
    return {}
  })
  on('test.requests', async () => ({ requests }))
  return hooks
}
