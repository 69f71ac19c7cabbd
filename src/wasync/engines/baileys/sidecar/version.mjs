import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

export function version () {
  try {
    const require = createRequire(import.meta.url)
    const path = require.resolve('baileys/package.json')
    return JSON.parse(readFileSync(path, 'utf8')).version
  } catch {
    return null
  }
}
