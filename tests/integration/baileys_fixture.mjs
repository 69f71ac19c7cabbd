// Builds real WAProto objects with Baileys' own `proto` for wasync's Baileys tests.
// Reads {"items": [...]} on stdin, prints a JSON list of results (one per item):
//   {"kind": "creds", "me": {"id", "lid", "name"}}         -> creds JSON (BufferJSON)
//   {"kind": "message", "key", "timestamp", "pushName", "participant", "message"}
//                                                          -> base64 WebMessageInfo
//   {"kind": "history", "me", "id", "sync", "requestId"}   -> base64 WebMessageInfo: the
//      HISTORY_SYNC_NOTIFICATION our phone sends, with the HistorySync inline
import { deflateSync } from 'node:zlib'
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const dir = process.env.BAILEYS_SIDECAR_DIR
const { proto, initAuthCreds, BufferJSON } = await import(
  pathToFileURL(join(dir, 'node_modules', 'baileys', 'lib', 'index.js')).href
)
const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const spec = JSON.parse(Buffer.concat(chunks).toString())
const b64 = (bytes) => Buffer.from(bytes).toString('base64')

const out = spec.items.map((item) => {
  switch (item.kind) {
    case 'creds':
      return JSON.stringify({ ...initAuthCreds(), me: item.me }, BufferJSON.replacer)
    case 'message': {
      const info = { key: item.key, messageTimestamp: item.timestamp, message: item.message }
      if (item.pushName) info.pushName = item.pushName
      if (item.participant) info.participant = item.participant
      if (item.messageStubType) info.messageStubType = item.messageStubType
      return b64(proto.WebMessageInfo.encode(proto.WebMessageInfo.fromObject(info)).finish())
    }
    case 'history': {
      const sync = proto.HistorySync.encode(proto.HistorySync.fromObject(item.sync)).finish()
      const notification = {
        syncType: item.sync.syncType,
        initialHistBootstrapInlinePayload: deflateSync(sync),
        chunkOrder: 0
      }
      if (item.requestId) notification.peerDataRequestSessionId = item.requestId
      const info = proto.WebMessageInfo.fromObject({
        key: { remoteJid: item.me, fromMe: true, id: item.id },
        messageTimestamp: 1700000000,
        message: {
          protocolMessage: {
            type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION,
            historySyncNotification: notification
          }
        }
      })
      return b64(proto.WebMessageInfo.encode(info).finish())
    }
    default:
      throw new Error(`unknown item ${item.kind}`)
  }
})
process.stdout.write(JSON.stringify(out))
