// One WhatsApp socket and what it tells us, forwarded to wasync as protocol events.
//
// Baileys buffers and merges its events (and drops chats it has seen once from later
// history sets). wasync needs each history set as the phone sent it, with its request
// id and each conversation's end-of-history marker, so events are taken where Baileys
// emits them (a wrapper around `ev.emit`), before any buffering.
import makeWASocket, {
  Browsers,
  DisconnectReason,
  downloadContentFromMessage,
  proto
} from 'baileys'
import { makeAuthState } from './auth.mjs'
import { emit, log } from './protocol.mjs'

const b64 = (bytes) => Buffer.from(bytes).toString('base64')

function makeLogger (level) {
  // Baileys logs objects that can hold keys and message bodies: keep only the text.
  const order = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 }
  const threshold = order[level] ?? order.warn
  const logger = { level }
  for (const name of Object.keys(order)) {
    logger[name] = (obj, msg) => {
      if (order[name] < threshold) return
      const text = typeof obj === 'string' ? obj : msg
      const err = obj && typeof obj === 'object' && obj.err ? `: ${obj.err.message || obj.err}` : ''
      log(name, `baileys: ${text || '(no message)'}${err}`)
    }
  }
  logger.child = () => logger
  return logger
}

async function proxyAgent (url) {
  if (!url) return undefined
  if (url.startsWith('socks')) {
    const { SocksProxyAgent } = await import('socks-proxy-agent')
    return new SocksProxyAgent(url)
  }
  const { HttpsProxyAgent } = await import('https-proxy-agent')
  return new HttpsProxyAgent(url)
}

export function historySync (data) {
  // The HistorySync the phone sent, rebuilt from what Baileys made of it: its
  // conversations (with endOfHistoryTransferType) holding their messages again.
  const conversations = new Map()
  for (const chat of data.chats || []) {
    conversations.set(chat.id, { ...chat, messages: [] })
  }
  for (const message of data.messages || []) {
    const id = message.key?.remoteJid
    if (!id) continue
    if (!conversations.has(id)) conversations.set(id, { id, messages: [] })
    conversations.get(id).messages.push({ message })
  }
  const sync = {
    syncType: data.syncType,
    conversations: [...conversations.values()],
    phoneNumberToLidMappings: (data.lidPnMappings || []).map(({ lid, pn }) => ({ lidJid: lid, pnJid: pn })),
    pushnames: (data.contacts || [])
      .filter((c) => c.id && c.notify)
      .map((c) => ({ id: c.id, pushname: c.notify }))
  }
  if (data.progress !== undefined && data.progress !== null) sync.progress = data.progress
  return proto.HistorySync.encode(sync).finish()
}

function alt (key) {
  const out = {}
  for (const field of ['remoteJidAlt', 'participantAlt', 'addressingMode']) {
    if (key?.[field]) out[field] = key[field]
  }
  return out
}

function contact (c) {
  const out = { id: c.id }
  for (const field of ['name', 'notify', 'verifiedName', 'lid', 'phoneNumber', 'imgUrl']) {
    if (typeof c[field] === 'string' && c[field]) out[field] = c[field]
  }
  return out
}

function group (g) {
  return {
    id: g.id,
    subject: g.subject || null,
    desc: g.desc || null,
    owner: g.owner || null,
    ownerPn: g.ownerPn || null,
    creation: g.creation || null,
    participants: (g.participants || []).map((p) => ({
      id: p.id,
      phoneNumber: p.phoneNumber || null,
      lid: p.lid || null,
      admin: p.admin || null
    }))
  }
}

function chat (c) {
  const num = (v) => (v === undefined || v === null ? null : Number(v))
  return {
    id: c.id,
    name: c.name || c.displayName || null,
    archived: c.archived ?? null,
    pinned: num(c.pinned),
    muteEndTime: num(c.muteEndTime),
    unreadCount: num(c.unreadCount),
    conversationTimestamp: num(c.conversationTimestamp)
  }
}

function forward (event, data) {
  switch (event) {
    case 'connection.update': {
      const err = data.lastDisconnect?.error
      const out = {}
      for (const field of ['connection', 'qr', 'isNewLogin', 'receivedPendingNotifications']) {
        if (data[field] !== undefined) out[field] = data[field]
      }
      if (data.connection === 'close') {
        out.status = err?.output?.statusCode ?? null
        out.reason = err ? String(err.message || err) : null
      }
      emit('connection', out)
      break
    }
    case 'messages.upsert':
      emit('messages', {
        type: data.type,
        items: data.messages.map((m) => ({ proto: b64(proto.WebMessageInfo.encode(m).finish()), ...alt(m.key) }))
      })
      break
    case 'messaging-history.set':
      emit('history', {
        proto: b64(historySync(data)),
        syncType: data.syncType ?? null,
        progress: data.progress ?? null,
        requestId: data.peerDataRequestSessionId || null
      })
      break
    case 'contacts.upsert':
    case 'contacts.update':
      emit('contacts', { items: data.filter((c) => c.id).map(contact) })
      break
    case 'chats.upsert':
      emit('chats', { items: data.filter((c) => c.id).map(chat) })
      break
    case 'groups.upsert':
      emit('groups', { items: data.map(group) })
      break
    case 'groups.update':
      emit('group-changed', { ids: data.map((g) => g.id).filter(Boolean) })
      break
    case 'group-participants.update':
      emit('group-changed', { ids: [data.id] })
      break
    case 'lid-mapping.update':
      emit('lid', { pairs: (Array.isArray(data) ? data : [data]).filter((m) => m?.lid && m?.pn) })
      break
  }
}

export class Session {
  constructor (hooks) {
    this.hooks = hooks
    this.sock = null
    this.saveCreds = null
  }

  async start (args) {
    await this.stop()
    const { state, saveCreds } = makeAuthState(args.auth || {})
    this.saveCreds = saveCreds
    const options = args.options || {}
    const config = {
      auth: state,
      logger: makeLogger(options.logLevel || 'warn'),
      // A desktop browser is what the phone sends the long history to.
      browser: Browsers.macOS('Desktop'),
      syncFullHistory: !!options.fullHistory,
      shouldSyncHistoryMessage: () => true,
      // A mirror must not mark the account online (the phone would stop notifying).
      markOnlineOnConnect: false,
      connectTimeoutMs: options.connectTimeoutMs || 20000,
      getMessage: async () => undefined
    }
    if (options.wsUrl) config.waWebSocketUrl = options.wsUrl
    const agent = await proxyAgent(options.proxy)
    if (agent) config.agent = agent
    const sock = makeWASocket(config)
    this.sock = sock
    const realEmit = sock.ev.emit.bind(sock.ev)
    sock.ev.emit = (event, data) => {
      if (this.sock === sock) {
        try {
          forward(event, data)
        } catch (err) {
          log('error', `forwarding ${event} failed: ${err?.message}`)
        }
      }
      return realEmit(event, data)
    }
    sock.ev.on('creds.update', (update) => {
      saveCreds(update).catch((err) => log('error', `saving creds failed: ${err?.message}`))
      if (update.me && this.sock === sock) {
        emit('me', { id: update.me.id || null, lid: update.me.lid || null, name: update.me.name || null })
      }
    })
    this.hooks.attach(sock)
    const me = state.creds.me
    return { registered: !!me, me: me ? { id: me.id, lid: me.lid || null } : null }
  }

  async stop () {
    const sock = this.sock
    this.sock = null
    if (sock) {
      try {
        sock.end(undefined)
      } catch {}
    }
    return {}
  }

  need () {
    if (!this.sock) {
      const err = new Error('not connected')
      err.output = { statusCode: DisconnectReason.connectionClosed }
      throw err
    }
    return this.sock
  }

  async logout () {
    await this.need().logout()
    return {}
  }

  async pairCode ({ phone }) {
    return { code: await this.need().requestPairingCode(phone) }
  }

  async groups () {
    const all = await this.need().groupFetchAllParticipating()
    return { items: Object.values(all).map(group) }
  }

  async group ({ jid }) {
    return group(await this.need().groupMetadata(jid))
  }

  async picture ({ jid }) {
    return { url: (await this.need().profilePictureUrl(jid, 'image')) || null }
  }

  async history ({ chat, id, fromMe, participant, timestamp, count }) {
    const key = { remoteJid: chat, id, fromMe: !!fromMe }
    if (participant) key.participant = participant
    // WhatsApp reads this field as seconds, whatever its name says (whatsmeow agrees).
    const requestId = await this.hooks.fetchMessageHistory(this.need(), count, key, timestamp)
    return { requestId }
  }

  async download ({ kind, mediaKey, directPath, url }) {
    const stream = await downloadContentFromMessage(
      { mediaKey: Buffer.from(mediaKey || '', 'base64'), directPath, url },
      kind
    )
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    return { data: Buffer.concat(chunks).toString('base64') }
  }
}
