/**
 * Transfer progress: a redrawn bar with bytes, rate and ETA on a terminal (stderr), one plain line
 * per finished file when output is not a terminal, JSON events (one object per line, stdout) with
 * `--json`, or nothing with `--quiet`.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"

/**
 * @since 0.1.0
 * @category models
 */
export type Style = "bar" | "lines" | "json" | "quiet"

/**
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly style: Style
  readonly plan: (files: number, bytes: number) => void
  readonly fileStart: (source: string, destination: string, size: number) => void
  readonly advance: (bytes: number) => void
  /** Corrects the planned total (e.g. stored size known, plaintext size learnt on open). */
  readonly retotal: (delta: number) => void
  readonly fileDone: (source: string, destination: string, size: number, detail?: Record<string, unknown>) => void
  readonly fileFailed: (source: string, destination: string, message: string) => void
  readonly finish: () => void
}

/**
 * Chooses the style from the flags and whether stderr is a terminal.
 *
 * @since 0.1.0
 * @category constructors
 */
export const styleFor = (flags: { readonly json: boolean; readonly quiet: boolean }, stderrIsTty: boolean): Style =>
  flags.json ? "json" : flags.quiet ? "quiet" : stderrIsTty ? "bar" : "lines"

/**
 * Human-readable byte counts (binary units).
 *
 * @since 0.1.0
 * @category rendering
 */
export const formatBytes = (n: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`
}

/**
 * `m:ss` or `h:mm:ss`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--"
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, "0")
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`
}

/**
 * One rendering of the bar.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderBar = (state: { done: number; total: number; elapsedMs: number; filesDone: number; files: number }, width = 24): string => {
  const fraction = state.total > 0 ? Math.min(1, state.done / state.total) : state.files > 0 && state.filesDone === state.files ? 1 : 0
  const filled = Math.round(fraction * width)
  const rate = state.elapsedMs > 0 ? (state.done * 1000) / state.elapsedMs : 0
  const eta = rate > 0 ? (state.total - state.done) / rate : Number.NaN
  const files = state.files > 1 ? ` ${state.filesDone}/${state.files} files` : ""
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ` +
    `${formatBytes(state.done)}/${formatBytes(state.total)} ${formatBytes(Math.round(rate))}/s ETA ${formatDuration(eta)}${files}`
}

interface Sinks {
  readonly out: (s: string) => void
  readonly err: (s: string) => void
  readonly now: () => number
}

const defaultSinks: Sinks = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  now: () => Date.now()
}

/**
 * A progress reporter. `verb` names the operation in plain lines (`upload`, `download`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (style: Style, verb: string, sinks: Sinks = defaultSinks): Progress => {
  const started = sinks.now()
  let files = 0
  let total = 0
  let done = 0
  let filesDone = 0
  let lastDraw = 0
  let lastEvent = 0
  const state = () => ({ done, total, elapsedMs: sinks.now() - started, filesDone, files })
  const draw = (force: boolean) => {
    if (style !== "bar") return
    const t = sinks.now()
    if (!force && t - lastDraw < 100) return
    lastDraw = t
    sinks.err(`\r\x1b[K${renderBar(state())}`)
  }
  const event = (e: Record<string, unknown>) => sinks.out(JSON.stringify(e) + "\n")
  return {
    style,
    plan: (f, b) => {
      files = f
      total = b
      if (style === "json") event({ event: "plan", files: f, bytes: b })
      draw(true)
    },
    fileStart: (source, destination, size) => {
      if (style === "json") event({ event: "start", source, destination, bytes: size })
    },
    advance: (n) => {
      done += n
      if (style === "bar") draw(false)
      else if (style === "json") {
        const t = sinks.now()
        if (t - lastEvent >= 250) {
          lastEvent = t
          event({ event: "progress", bytes: done, totalBytes: total, elapsedMs: t - started })
        }
      }
    },
    retotal: (delta) => {
      total = Math.max(0, total + delta)
    },
    fileDone: (source, destination, size, detail) => {
      filesDone++
      if (style === "json") event({ event: "done", source, destination, bytes: size, ...detail })
      else if (style === "lines") sinks.out(`${verb}: ${source} -> ${destination} (${formatBytes(size)})\n`)
      else draw(false)
    },
    fileFailed: (source, destination, message) => {
      if (style === "json") event({ event: "failed", source, destination, error: message })
    },
    finish: () => {
      const s = state()
      if (style === "bar") {
        draw(true)
        sinks.err("\n")
      } else if (style === "json") {
        event({ event: "summary", files: filesDone, bytes: s.done, elapsedMs: s.elapsedMs })
      } else if (style === "lines" && files > 1) {
        sinks.out(`${filesDone} files, ${formatBytes(s.done)} in ${formatDuration(s.elapsedMs / 1000)}\n`)
      }
    }
  }
}

/**
 * Runs `effect` and clears a half-drawn bar if it fails, so the error starts on its own line.
 *
 * @since 0.1.0
 * @category combinators
 */
export const guard = <A, E, R>(progress: Progress, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  progress.style === "bar" ? Effect.onExit(effect, (exit) => (exit._tag === "Failure" ? Effect.sync(() => process.stderr.write("\n")) : Effect.void)) : effect
