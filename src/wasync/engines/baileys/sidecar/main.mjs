// wasync's Baileys sidecar: started by wasync (engines/baileys), never by hand.
// Protocol: protocol.mjs. Test-only hooks: hooks.mjs (off unless its flag is set).
import { version as baileysVersion } from './version.mjs'
import { makeHooks, enabled as testHooks } from './hooks.mjs'
import { listen, log, on } from './protocol.mjs'
import { Session } from './session.mjs'

const session = new Session(makeHooks())

on('hello', async () => ({ baileys: baileysVersion(), node: process.version, testHooks }))
on('start', (args) => session.start(args))
on('stop', () => session.stop())
on('logout', () => session.logout())
on('pairCode', (args) => session.pairCode(args))
on('groups', () => session.groups())
on('group', (args) => session.group(args))
on('picture', (args) => session.picture(args))
on('history', (args) => session.history(args))
on('download', (args) => session.download(args))

// Baileys runs background work (keep-alives, retries) whose failures must not end
// the process: log them, the connection events say what it means for the session.
process.on('unhandledRejection', (err) => log('warn', `background failure: ${err?.message || err}`))
process.on('uncaughtException', (err) => log('error', `uncaught: ${err?.message || err}`))

listen(async () => {
  await session.stop()
  process.exit(0)
})
log('info', 'ready')
