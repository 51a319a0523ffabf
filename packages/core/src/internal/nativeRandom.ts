/**
 * The randomness source of the native format. Always `crypto.randomBytes`, except inside the
 * test-vector generator, which substitutes a deterministic stream with `Effect.locally`. Not exported
 * from any public module.
 *
 * @since 0.1.0
 * @internal
 */
import { FiberRef } from "effect"
import * as crypto from "node:crypto"

/** @internal */
export type RandomSource = (length: number) => Uint8Array

/** @internal */
export const currentRandom: FiberRef.FiberRef<RandomSource> = FiberRef.unsafeMake<RandomSource>((n) => crypto.randomBytes(n))

/**
 * A deterministic byte stream for test vectors only: SHA-256 in counter mode over a seed.
 *
 * @internal
 */
export const deterministic = (seed: string): RandomSource => {
  let counter = 0
  return (length) => {
    const out = Buffer.alloc(length)
    let off = 0
    while (off < length) {
      const block = crypto.createHash("sha256").update(seed).update(String(counter++)).digest()
      off += block.copy(out, off)
    }
    return out
  }
}
