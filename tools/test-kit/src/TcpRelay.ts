/**
 * A TCP relay on 127.0.0.1 in front of a test server: it counts the bytes clients send and can
 * change one byte of a connection's request stream at a chosen offset — to see whether a driver
 * streams a body (bytes reach the server before the body ends) and whether it notices bytes
 * changed on the way.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"

/**
 * @since 0.1.0
 * @category models
 */
export interface TcpRelay {
  /** `http://127.0.0.1:<port>`: point the client here. */
  readonly endpoint: string
  /** Bytes sent by clients through the relay so far. */
  readonly sent: () => number
  /**
   * Flips one bit of the byte at this offset of the next connection's (or the current one's)
   * request stream that reaches it; cleared once done.
   */
  corruptAt: number | undefined
  /**
   * While true, bytes in either direction are swallowed: the server seems to accept requests and
   * never answer (or to stop in the middle of a body). Connections keep open.
   */
  blackhole: boolean
}

/**
 * A relay to `target` (an `http://host:port` URL), closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (target: string): Effect.Effect<TcpRelay, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly relay: TcpRelay; readonly close: () => void }>((resume) => {
      const url = new URL(target)
      let sent = 0
      const sockets = new Set<net.Socket>()
      const relay: TcpRelay = { endpoint: "", sent: () => sent, corruptAt: undefined, blackhole: false }
      const server = net.createServer((down) => {
        const up = net.connect(Number(url.port), url.hostname)
        sockets.add(down).add(up)
        let offset = 0
        down.on("data", (d: Buffer) => {
          const at = relay.corruptAt
          if (at !== undefined && offset <= at && at < offset + d.length) {
            d = Buffer.from(d)
            d[at - offset] = d[at - offset]! ^ 0x20
            relay.corruptAt = undefined
          }
          offset += d.length
          sent += d.length
          if (!relay.blackhole && !up.write(d)) {
            down.pause()
            up.once("drain", () => down.resume())
          }
        })
        up.on("data", (d: Buffer) => {
          if (!relay.blackhole && !down.write(d)) {
            up.pause()
            down.once("drain", () => up.resume())
          }
        })
        const end = () => {
          sockets.delete(down)
          sockets.delete(up)
          down.destroy()
          up.destroy()
        }
        down.on("close", end).on("error", end)
        up.on("close", end).on("error", end)
      })
      server.listen(0, "127.0.0.1", () => {
        ;(relay as { endpoint: string }).endpoint = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
        resume(Effect.succeed({
          relay,
          close: () => {
            for (const s of sockets) s.destroy()
            server.close()
          }
        }))
      })
    }),
    (r) => Effect.sync(() => r.close())
  ).pipe(Effect.map((r) => r.relay))
