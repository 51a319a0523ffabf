import * as fs from "node:fs/promises"
import * as path from "node:path"
import { errCode } from "./io.js"
import { compareKeys } from "@objcrypt/core/ObjectStore"
import { dirName, parseName } from "./keys.js"

/**
 * One entry of a directory of the tree. `contrib` is what the entry adds to the keys below it:
 * the segment for an object, the segment and `/` for a directory. Sorting siblings by the UTF-8
 * bytes of `contrib` and walking depth-first yields every key in S3's order, because all keys
 * below an entry start with its `contrib` and no `contrib` but a directory's holds a `/`.
 */
export interface DirEntry {
  readonly name: string
  readonly isDir: boolean
  readonly contrib: string
  readonly bytes: Buffer
}

interface Cached {
  readonly ino: number
  readonly mtimeMs: number
  readonly entries: ReadonlyArray<DirEntry>
}

/**
 * Sorted directory listings, reused while the directory's inode and mtime are unchanged, so a
 * paginated listing of a large directory reads and sorts it once instead of once per page. A
 * listing is only kept when the directory was last changed some seconds before it was read:
 * mtime has a coarse granularity, and a change in the same tick as the read would go unnoticed.
 */
export class DirCache {
  private readonly map = new Map<string, Cached>()
  private total = 0
  private readonly maxEntries: number
  private readonly settleMs: number

  constructor(maxEntries = 500_000, settleMs = 2_000) {
    this.maxEntries = maxEntries
    this.settleMs = settleMs
  }

  /** The sorted entries of a directory; `undefined` when it does not exist. */
  async read(dir: string): Promise<ReadonlyArray<DirEntry> | undefined> {
    let st: import("node:fs").Stats
    try {
      st = await fs.stat(dir)
    } catch (e) {
      if (isMissing(e)) return undefined
      throw e
    }
    if (!st.isDirectory()) return undefined
    const hit = this.map.get(dir)
    if (hit !== undefined && hit.ino === st.ino && hit.mtimeMs === st.mtimeMs) {
      this.map.delete(dir)
      this.map.set(dir, hit)
      return hit.entries
    }
    let names: Array<string>
    try {
      names = await fs.readdir(dir)
    } catch (e) {
      if (isMissing(e)) return undefined
      throw e
    }
    const entries: Array<DirEntry> = []
    for (const name of names) {
      const p = parseName(name)
      if (p === undefined) continue
      const contrib = p.isDir ? p.segment + "/" : p.segment
      entries.push({ name, isDir: p.isDir, contrib, bytes: Buffer.from(contrib) })
    }
    entries.sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    if (hit !== undefined) this.forget(dir, hit)
    if (Date.now() - st.mtimeMs > this.settleMs && entries.length <= this.maxEntries) {
      this.map.set(dir, { ino: st.ino, mtimeMs: st.mtimeMs, entries })
      this.total += entries.length
      for (const [k, v] of this.map) {
        if (this.total <= this.maxEntries) break
        this.forget(k, v)
      }
    }
    return entries
  }

  private forget(dir: string, c: Cached) {
    this.map.delete(dir)
    this.total -= c.entries.length
  }
}

const isMissing = (e: unknown) => {
  const c = errCode(e)
  return c === "ENOENT" || c === "ENOTDIR" || c === "ENAMETOOLONG"
}

/** First index whose `bytes` are > `b` (or >= with `inclusive`). */
const bound = (entries: ReadonlyArray<DirEntry>, b: Buffer, inclusive: boolean): number => {
  let lo = 0
  let hi = entries.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const c = Buffer.compare(entries[mid]!.bytes, b)
    if (c < 0 || (c === 0 && !inclusive)) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** An item of a listing page, before its object headers are read. */
export type WalkItem =
  | { readonly _tag: "Object"; readonly key: string; readonly file: string }
  | { readonly _tag: "Prefix"; readonly prefix: string }

/** What to list. Keys are returned in UTF-8 byte order. */
export interface WalkOptions {
  readonly prefix: string
  readonly delimiter?: string | undefined
  /** Only keys strictly after this one. */
  readonly after?: string | undefined
  /** Skip every key starting with this (the last common prefix of the previous page). */
  readonly afterPrefix?: string | undefined
  /** Stop after this many items. */
  readonly limit: number
}

/**
 * Walks the tree under `root` in key order and returns up to `limit` objects and common prefixes.
 * It starts at the deepest directory the prefix names (a narrow prefix never reads the rest of
 * the tree), binary-searches each directory for the first entry past `after`, and, with the `/`
 * delimiter, reports a directory as a common prefix without walking it.
 */
export const walk = async (cache: DirCache, root: string, options: WalkOptions): Promise<Array<WalkItem>> => {
  const out: Array<WalkItem> = []
  const { prefix } = options
  const base = prefix.slice(0, prefix.lastIndexOf("/") + 1)
  const dir = base === "" ? root : path.join(root, ...base.slice(0, -1).split("/").map(dirName))
  await walkDir(cache, dir, base, options, out)
  return out
}

const walkDir = async (
  cache: DirCache,
  dir: string,
  base: string,
  o: WalkOptions,
  out: Array<WalkItem>
): Promise<boolean> => {
  // Every key below `base` sorts before `after` unless `after` is itself below `base`.
  if (o.after !== undefined && !o.after.startsWith(base) && compareKeys(base, o.after) < 0) return false
  const entries = await cache.read(dir)
  if (entries === undefined) return false
  const relPrefix = o.prefix.length > base.length ? o.prefix.slice(base.length) : ""
  let i = relPrefix === "" ? 0 : bound(entries, Buffer.from(relPrefix), true)
  if (o.after !== undefined && o.after.startsWith(base)) {
    const relAfter = o.after.slice(base.length)
    let j = bound(entries, Buffer.from(relAfter), false)
    if (j > 0 && entries[j - 1]!.isDir && relAfter.startsWith(entries[j - 1]!.contrib)) j--
    i = Math.max(i, j)
  }
  const delimiter = o.delimiter === "" ? undefined : o.delimiter
  for (; i < entries.length; i++) {
    const e = entries[i]!
    if (relPrefix !== "" && !e.contrib.startsWith(relPrefix)) break
    const full = base + e.contrib
    if (o.afterPrefix !== undefined && full.startsWith(o.afterPrefix)) continue
    if (e.isDir) {
      const sub = path.join(dir, e.name)
      if (delimiter === "/" && full.length > o.prefix.length) {
        // `full` is exactly the common prefix of every key below; report it if one of them counts.
        if (await walkDir(cache, sub, full, { ...o, prefix: full, delimiter: undefined, limit: 1 }, [])) {
          out.push({ _tag: "Prefix", prefix: full })
        }
      } else if (await walkDir(cache, sub, full, o, out)) {
        return true
      }
    } else {
      if (o.after !== undefined && compareKeys(full, o.after) <= 0) continue
      const at = delimiter === undefined ? -1 : full.indexOf(delimiter, o.prefix.length)
      if (at >= 0) {
        const cp = full.slice(0, at + delimiter!.length)
        const last = out[out.length - 1]
        if (last?._tag === "Prefix" && last.prefix === cp) continue
        out.push({ _tag: "Prefix", prefix: cp })
      } else {
        out.push({ _tag: "Object", key: full, file: path.join(dir, e.name) })
      }
    }
    if (out.length >= o.limit) return true
  }
  return out.length >= o.limit
}
