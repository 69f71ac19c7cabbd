// The session's keys, held in memory and written through to wasync.
//
// wasync owns the storage (a file per session, or PostgreSQL next to the mirror), so a
// session moves with its database. It sends everything it holds at start; reads are
// served from memory, and every write is sent back and awaited before Baileys goes on,
// so nothing Baileys relies on is acknowledged to WhatsApp before it is stored.
import { BufferJSON, initAuthCreds } from 'baileys'
import { call } from './protocol.mjs'

const encode = (value) => JSON.stringify(value, BufferJSON.replacer)
const decode = (text) => JSON.parse(text, BufferJSON.reviver)

export function makeAuthState (stored) {
  const creds = stored.creds ? decode(stored.creds) : initAuthCreds()
  const keys = new Map() // "category\u0000id" -> value
  for (const [category, id, text] of stored.keys || []) {
    keys.set(`${category}\u0000${id}`, decode(text))
  }
  // One write at a time, in order: a later value never lands before an earlier one.
  let queue = Promise.resolve()
  const write = (rows) => {
    const next = queue.then(() => call('auth.set', { rows }))
    queue = next.catch(() => {})
    return next
  }
  const state = {
    creds,
    keys: {
      get: async (category, ids) => {
        const out = {}
        for (const id of ids) {
          const value = keys.get(`${category}\u0000${id}`)
          if (value !== undefined) out[id] = value
        }
        return out
      },
      set: async (data) => {
        const rows = []
        for (const category of Object.keys(data)) {
          for (const [id, value] of Object.entries(data[category] || {})) {
            if (value === null || value === undefined) {
              keys.delete(`${category}\u0000${id}`)
              rows.push([category, id, null])
            } else {
              keys.set(`${category}\u0000${id}`, value)
              rows.push([category, id, encode(value)])
            }
          }
        }
        if (rows.length) await write(rows)
      },
      clear: async () => {
        keys.clear()
        await write([['*', '*', null]])
      }
    }
  }
  const saveCreds = (update) => {
    Object.assign(creds, update)
    return write([['creds', '', encode(creds)]])
  }
  return { state, saveCreds }
}
