import { assert, afterEach, beforeEach, describe, it } from "@effect/vitest"
import * as cp from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { BIN, filesBelow, type Home, makeHome, oneLineError } from "./harness.js"

let home: Home
beforeEach(() => {
  home = makeHome()
})
afterEach(() => home.cleanup())

describe("the built bin", () => {
  it("starts with a node shebang carrying its heap flag, and runs as an executable through it", () => {
    assert.isTrue(fs.readFileSync(BIN, "utf8").startsWith("#!/usr/bin/env -S node --initial-old-space-size=128\n"))
    assert.notStrictEqual(fs.statSync(BIN).mode & 0o111, 0, "the bin is executable")
    // As npm's bin link runs it: the file itself, `node` found on PATH (the pinned one first).
    const r = cp.spawnSync(BIN, ["--version"], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}` }
    })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.match(r.stdout, /^\d+\.\d+\.\d+/)
  })

  it("runs on the pinned Node 24", () => {
    assert.strictEqual(process.versions.node.split(".")[0], "24")
  })
})

describe("README first command, embedded local store, no configuration", () => {
  it("generates a key, encrypts a tree, lists it and reads it back", async () => {
    const photo = crypto.randomBytes(3 * 1024 * 1024 + 17)
    home.file("photos/a.jpg", photo)
    home.file("photos/trip/b.jpg", "a small photo, in plaintext on disk\n")

    const gen = await home.run(["keys", "generate", "backup"])
    assert.strictEqual(gen.code, 0, gen.stderr)
    const cp = await home.run(["cp", "-r", "./photos", "local://photos", "--mode", "cse-c", "--key", "backup"])
    assert.strictEqual(cp.code, 0, cp.stderr)
    assert.include(cp.stdout, "local://photos/a.jpg")

    const ls = await home.run(["ls", "local://photos"])
    assert.strictEqual(ls.code, 0, ls.stderr)
    assert.match(ls.stdout, /a\.jpg/)
    assert.match(ls.stdout, /PRE\s+trip\//)

    const cat = await home.run(["cat", "local://photos/a.jpg"])
    assert.strictEqual(cat.code, 0, cat.stderr)
    assert.isTrue(cat.stdoutBytes.equals(photo))

    // Only ciphertext reaches the store.
    const stored = filesBelow(home.storeRoot).map((f) => fs.readFileSync(f))
    assert.isAbove(stored.length, 0)
    assert.isFalse(stored.some((b) => b.includes(Buffer.from("in plaintext on disk"))))
    assert.isFalse(stored.some((b) => b.includes(photo.subarray(1000, 1064))))
  })

  it("downloads a tree back with cp -r and a single object into a directory", async () => {
    home.file("docs/one.txt", "one\n")
    home.file("docs/deep/two.txt", "two\n")
    assert.strictEqual((await home.run(["keys", "generate", "k"])).code, 0)
    assert.strictEqual((await home.run(["cp", "-r", "docs", "local://d", "--mode", "cse-c", "--key", "k"])).code, 0)
    const back = await home.run(["cp", "-r", "local://d", "restored"])
    assert.strictEqual(back.code, 0, back.stderr)
    assert.strictEqual(fs.readFileSync(path.join(home.dir, "restored/deep/two.txt"), "utf8"), "two\n")
    fs.mkdirSync(path.join(home.dir, "single"))
    const one = await home.run(["cp", "local://d/one.txt", "single"])
    assert.strictEqual(one.code, 0, one.stderr)
    assert.strictEqual(fs.readFileSync(path.join(home.dir, "single/one.txt"), "utf8"), "one\n")
    // no temporary files left beside downloads
    assert.deepStrictEqual(fs.readdirSync(path.join(home.dir, "single")), ["one.txt"])
  })

  it("cat --range returns exactly the requested plaintext bytes", async () => {
    const data = crypto.randomBytes(2 * 1024 * 1024 + 5)
    home.file("r.bin", data)
    await home.run(["keys", "generate", "k"])
    assert.strictEqual((await home.run(["cp", "r.bin", "local://r.bin", "--mode", "cse-c", "--key", "k"])).code, 0)
    const mid = await home.run(["cat", "local://r.bin", "--range", "1048570-1048600"])
    assert.strictEqual(mid.code, 0, mid.stderr)
    assert.isTrue(mid.stdoutBytes.equals(data.subarray(1048570, 1048601)))
    const tail = await home.run(["cat", "local://r.bin", "--range", "-7"])
    assert.isTrue(tail.stdoutBytes.equals(data.subarray(data.length - 7)))
  })

  it("mode none stores plaintext and inspect says so", async () => {
    home.file("p.txt", "plain words\n")
    const cp = await home.run(["cp", "p.txt", "local://p.txt"])
    assert.strictEqual(cp.code, 0, cp.stderr)
    const ins = await home.run(["inspect", "local://p.txt", "--json"])
    assert.strictEqual(ins.code, 0, ins.stderr)
    const report = JSON.parse(ins.stdout)
    assert.strictEqual(report.mode, "none")
    assert.isUndefined(report.clientSide)
  })
})

describe("inspect, rekey, audit", () => {
  it("inspect --json shows mode, key id and version, format and sizes", async () => {
    home.file("x.txt", "hello\n")
    await home.run(["keys", "generate", "k"])
    await home.run(["cp", "x.txt", "local://x.txt", "--mode", "cse-c", "--key", "k"])
    const keys = JSON.parse((await home.run(["keys", "list", "--json"])).stdout)
    const r = await home.run(["inspect", "local://x.txt", "--json"])
    assert.strictEqual(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.strictEqual(report.mode, "cse-c")
    assert.strictEqual(report.clientSide.plaintextSize, 6)
    assert.isAbove(report.size, 6)
    assert.strictEqual(report.clientSide.format, "objcrypt-native")
    assert.strictEqual(report.clientSide.keys[0].keyId, keys[0].id)
    assert.strictEqual(report.clientSide.keys[0].version, 1)
    assert.strictEqual(report.clientSide.keys[0].name, "k")
  })

  it("audit reports by mode and key version, exits 7 on violation, and rekey fixes it", async () => {
    home.file("t/a.txt", "a\n")
    home.file("t/b.txt", "b\n")
    home.file("plain.txt", "p\n")
    await home.run(["keys", "generate", "k"])
    assert.strictEqual((await home.run(["cp", "-r", "t", "local://t", "--mode", "cse-c", "--key", "k"])).code, 0)

    const ok = await home.run(["audit", "local://t", "--require-encrypted", "--json"])
    assert.strictEqual(ok.code, 0, ok.stderr)
    const okReport = JSON.parse(ok.stdout)
    assert.strictEqual(okReport.scanned, 2)
    assert.strictEqual(okReport.byMode["cse-c"], 2)

    assert.strictEqual((await home.run(["cp", "plain.txt", "local://t/plain.txt"])).code, 0)
    const bad = await home.run(["audit", "local://t", "--require-encrypted", "--json"])
    assert.strictEqual(bad.code, 7)
    const badReport = JSON.parse(bad.stdout)
    assert.strictEqual(badReport.violations.length, 1)
    assert.strictEqual(badReport.violations[0].url, "local://t/plain.txt")
    assert.match(oneLineError(bad), /1 of 3 objects break the policy/)
    assert.strictEqual((await home.run(["rm", "local://t/plain.txt"])).code, 0)

    assert.strictEqual((await home.run(["keys", "rotate", "k"])).code, 0)
    const stale = await home.run(["audit", "local://t", "--current-key-version-only"])
    assert.strictEqual(stale.code, 7)
    assert.match(stale.stdout, /k@1\s+2/)
    assert.match(stale.stdout, /not the primary version/)
    const min = await home.run(["audit", "local://t", "--min-key-version", "2", "--json"])
    assert.strictEqual(min.code, 7)

    const dry = await home.run(["rekey", "-r", "local://t", "--to", "k", "--dry-run", "--json"])
    assert.strictEqual(dry.code, 0, dry.stderr)
    assert.deepStrictEqual(JSON.parse(dry.stdout).objects.map((o: { status: string }) => o.status), ["would-rekey", "would-rekey"])
    assert.strictEqual((await home.run(["audit", "local://t", "--current-key-version-only"])).code, 7)

    const before = fs.readFileSync(filesBelow(home.storeRoot).find((f) => fs.readFileSync(f).length > 2 && !f.endsWith(".json"))!)
    const rekey = await home.run(["rekey", "-r", "local://t", "--to", "k"])
    assert.strictEqual(rekey.code, 0, rekey.stderr)
    assert.match(rekey.stdout, /rekeyed local:\/\/t\/a\.txt -> k@2/)
    const after = await home.run(["audit", "local://t", "--current-key-version-only", "--json"])
    assert.strictEqual(after.code, 0, after.stdout)
    assert.strictEqual(JSON.parse(after.stdout).byKey["k@2"], 2)
    assert.strictEqual((await home.run(["cat", "local://t/a.txt"])).stdout, "a\n")
    assert.isTrue(before.length > 0)
  })
})

describe("keys", () => {
  it("backup to a file and to the local store, restore into a new key store", async () => {
    await home.run(["keys", "generate", "k"])
    home.file("s.txt", "secret\n")
    await home.run(["cp", "s.txt", "local://s.txt", "--mode", "cse-c", "--key", "k"])
    const toFile = await home.run(["keys", "backup", "keys.bak"])
    assert.strictEqual(toFile.code, 0, toFile.stderr)
    const toStore = await home.run(["keys", "backup", "local://backups/"])
    assert.strictEqual(toStore.code, 0, toStore.stderr)
    const listed = await home.run(["ls", "--json", "local://backups"])
    assert.strictEqual(JSON.parse(listed.stdout).objects.length, 1)

    const fresh = path.join(home.dir, "other.keystore")
    const restored = await home.run(["keys", "restore", "keys.bak", "--keystore", fresh, "--json"])
    assert.strictEqual(restored.code, 0, restored.stderr)
    assert.deepStrictEqual(JSON.parse(restored.stdout).added, ["k"])
    const cat = await home.run(["cat", "local://s.txt", "--keystore", fresh])
    assert.strictEqual(cat.stdout, "secret\n")
  })

  it("export and import a raw key keep objects readable", async () => {
    await home.run(["keys", "generate", "k"])
    const exp = await home.run(["keys", "export", "k", "--format", "base64"])
    assert.strictEqual(exp.code, 0, exp.stderr)
    assert.strictEqual(Buffer.from(exp.stdout.trim(), "base64").length, 32)
    const imp = await home.run(["keys", "import", "k2", "--from", "-"], { input: exp.stdout })
    assert.strictEqual(imp.code, 0, imp.stderr)
    const show = await home.run(["keys", "show", "k2", "--json"])
    assert.strictEqual(JSON.parse(show.stdout).versions[0].origin, "imported")
  })
})

describe("endpoints configuration", () => {
  it("ls shows plaintext sizes and the mode of each object; --stored-sizes the stored ones", async () => {
    await home.run(["keys", "generate", "k"])
    const big = crypto.randomBytes(2 * 1024 * 1024 + 5)
    home.file("sizes/big.bin", big)
    home.file("sizes/plain.txt", "12345\n")
    assert.strictEqual((await home.run(["cp", "sizes/big.bin", "local://sizes/big.bin", "--mode", "cse-c", "--key", "k"])).code, 0)
    assert.strictEqual((await home.run(["cp", "sizes/plain.txt", "local://sizes/plain.txt"])).code, 0)
    const [text, json, stored] = await Promise.all([
      home.run(["ls", "local://sizes"]),
      home.run(["ls", "-r", "local://sizes", "--json"]),
      home.run(["ls", "local://sizes", "--stored-sizes", "--json"])
    ])
    assert.strictEqual(text.code, 0, text.stderr)
    assert.match(text.stdout, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+2\.0 MiB {2}cse-c {4}big\.bin$/m)
    assert.match(text.stdout, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+6 B {2}none {5}plain\.txt$/m)
    const objects = JSON.parse(json.stdout).objects as Array<{ url: string; size: number; storedSize: number; mode: string; format?: string }>
    const byUrl = Object.fromEntries(objects.map((o) => [o.url, o]))
    assert.strictEqual(byUrl["local://sizes/big.bin"]!.size, big.length)
    assert.isAbove(byUrl["local://sizes/big.bin"]!.storedSize, big.length, "the ciphertext carries tags")
    assert.strictEqual(byUrl["local://sizes/big.bin"]!.mode, "cse-c")
    assert.strictEqual(byUrl["local://sizes/big.bin"]!.format, "native")
    assert.deepStrictEqual([byUrl["local://sizes/plain.txt"]!.size, byUrl["local://sizes/plain.txt"]!.storedSize, byUrl["local://sizes/plain.txt"]!.mode], [6, 6, "none"])
    const raw = JSON.parse(stored.stdout).objects as Array<{ url: string; size: number; mode?: string }>
    assert.strictEqual(raw.find((o) => o.url === "local://sizes/big.bin")!.size, byUrl["local://sizes/big.bin"]!.storedSize)
    assert.isTrue(raw.every((o) => o.mode === undefined))
  })

  it("a named fs endpoint applies its default mode, and a flag overrides it", async () => {
    await home.run(["keys", "generate", "team"])
    const cfg = home.file("config/objcrypt/config.json", JSON.stringify({
      version: 1,
      endpoints: { vault: { type: "fs", root: path.join(home.dir, "vault"), prefix: "docs/", encryption: { mode: "cse-c", key: "team" } } }
    }))
    assert.isTrue(fs.existsSync(cfg))
    home.file("n.txt", "note\n")
    assert.strictEqual((await home.run(["cp", "n.txt", "vault:n.txt"])).code, 0)
    assert.strictEqual(JSON.parse((await home.run(["inspect", "vault:n.txt", "--json"])).stdout).mode, "cse-c")
    assert.strictEqual((await home.run(["cp", "n.txt", "vault:plain.txt", "--mode", "none"])).code, 0)
    const plain = JSON.parse((await home.run(["inspect", "vault:plain.txt", "--json"])).stdout)
    assert.strictEqual(plain.mode, "none")
    assert.strictEqual(plain.key, "docs/plain.txt")
    const ls = await home.run(["ls", "vault:", "--json"])
    assert.deepStrictEqual(JSON.parse(ls.stdout).objects.map((o: { url: string }) => o.url).sort(), ["vault:n.txt", "vault:plain.txt"])
  })
})

describe("bad input: one line, a documented exit code, no stack trace", () => {
  const setup = async () => {
    await home.run(["keys", "generate", "k"])
    home.file("f.txt", "data\n")
  }

  it("unknown key → 4", async () => {
    await setup()
    const r = await home.run(["cp", "f.txt", "local://f", "--mode", "cse-c", "--key", "nope"])
    assert.strictEqual(r.code, 4)
    assert.match(oneLineError(r), /no key "nope"/)
  })

  it("wrong passphrase → 4", async () => {
    await setup()
    const r = await home.run(["cp", "f.txt", "local://f", "--mode", "cse-c", "--key", "k"], { env: { OBJCRYPT_PASSPHRASE: "not the passphrase" } })
    assert.strictEqual(r.code, 4)
    assert.match(oneLineError(r), /passphrase/i)
    assert.notInclude(r.stderr, "not the passphrase")
  })

  it("no passphrase and no terminal → 4", async () => {
    await setup()
    const r = await home.run(["keys", "list"], { env: { OBJCRYPT_PASSPHRASE: undefined } })
    assert.strictEqual(r.code, 4)
    assert.match(oneLineError(r), /OBJCRYPT_PASSPHRASE/)
  })

  it("a mode the provider cannot do per the matrix → 6, naming alternatives, nothing written", async () => {
    await setup()
    const r = await home.run(["cp", "f.txt", "local://f", "--mode", "sse-c", "--key", "k"])
    assert.strictEqual(r.code, 6)
    assert.match(oneLineError(r), /sse-c.*cse-c/)
    assert.strictEqual((await home.run(["ls", "local://f"])).code, 3)
  })

  it("missing local file → 3", async () => {
    const r = await home.run(["cp", "missing.txt", "local://m"])
    assert.strictEqual(r.code, 3)
    assert.match(oneLineError(r), /missing\.txt/)
  })

  it("missing object → 3", async () => {
    const r = await home.run(["cat", "local://nothing/here"])
    assert.strictEqual(r.code, 3)
    assert.match(oneLineError(r), /local:\/\/nothing\/here/)
  })

  it("malformed URLs → 2", async () => {
    home.file("f.txt", "x")
    for (const url of ["s3://Not_A_Bucket/k", "s3:///k", "file://relative/path", "ftp://host/x", "nosuchendpoint:key"]) {
      const r = await home.run(["cp", "f.txt", url])
      assert.strictEqual(r.code, 2, `${url}: ${r.stderr}`)
      oneLineError(r)
    }
  })

  it("malformed gs:// and az:// → 2; az:// without credentials → 8", async () => {
    for (const url of ["gs://B/k", "gs://", "az://Upper/k", "az://a--b/k", "az://"]) {
      const r = await home.run(["ls", url])
      assert.strictEqual(r.code, 2, `${url}: ${r.stderr}`)
      oneLineError(r)
    }
    const r = await home.run(["ls", "az://container/k"], { env: { AZURE_STORAGE_CONNECTION_STRING: undefined } })
    assert.strictEqual(r.code, 8, r.stderr)
    assert.match(oneLineError(r), /AZURE_STORAGE_CONNECTION_STRING/)
  })

  it("unreadable or invalid config → 8", async () => {
    const missing = await home.run(["ls", "--config", path.join(home.dir, "none.json")])
    assert.strictEqual(missing.code, 8)
    oneLineError(missing)
    const notJson = home.file("bad.json", "{ nope")
    const r1 = await home.run(["ls"], { env: { OBJCRYPT_CONFIG: notJson } })
    assert.strictEqual(r1.code, 8)
    assert.match(oneLineError(r1), /not valid JSON/)
    const badSchema = home.file("bad2.json", JSON.stringify({ endpoints: { x: { type: "s3" } } }))
    const r2 = await home.run(["ls", "--config", badSchema])
    assert.strictEqual(r2.code, 8)
    assert.match(oneLineError(r2), /bucket/)
    const inline = home.file("bad3.json", JSON.stringify({ endpoints: { x: { type: "s3", bucket: "b", credentials: { secretAccessKey: "shh-secret" } } } }))
    const r3 = await home.run(["ls", "--config", inline])
    assert.strictEqual(r3.code, 8)
    assert.match(oneLineError(r3), /inline credentials/)
    assert.notInclude(r3.stderr, "shh-secret")
  })

  it("usage errors → 2", async () => {
    for (const args of [["cp", "only-one"], ["cp", "a", "local://b", "--mode", "bogus"], ["frobnicate"], ["cp", "a", "b"]]) {
      const r = await home.run(args)
      assert.strictEqual(r.code, 2, `${args.join(" ")}: ${r.stderr}`)
      oneLineError(r)
    }
  })

  it("tampered ciphertext → 5, and no plaintext is written", async () => {
    await setup()
    home.file("big.bin", crypto.randomBytes(64 * 1024))
    assert.strictEqual((await home.run(["cp", "big.bin", "local://big.bin", "--mode", "cse-c", "--key", "k"])).code, 0)
    const data = filesBelow(home.storeRoot).map((f) => [f, fs.statSync(f).size] as const).sort((a, b) => b[1] - a[1])[0]![0]
    const bytes = fs.readFileSync(data)
    bytes[bytes.length - 100] ^= 1
    fs.writeFileSync(data, bytes)
    const r = await home.run(["cat", "local://big.bin"])
    assert.strictEqual(r.code, 5)
    assert.match(oneLineError(r), /cannot decrypt/)
    const dl = await home.run(["cp", "local://big.bin", "out.bin"])
    assert.strictEqual(dl.code, 5)
    assert.isFalse(fs.existsSync(path.join(home.dir, "out.bin")))
    assert.deepStrictEqual(fs.readdirSync(home.dir).filter((f) => f.includes("objcrypt-part")), [])
  })

  it("--verbose adds the cause", async () => {
    const r = await home.run(["cat", "local://nothing", "--verbose"])
    assert.strictEqual(r.code, 3)
    assert.isAbove(r.stderr.split("\n").filter((l) => l !== "").length, 1)
  })
})

describe("--json output parses", () => {
  it("keys, ls, matrix and cp events", async () => {
    const gen = await home.run(["keys", "generate", "k", "--json"])
    assert.strictEqual(JSON.parse(gen.stdout).name, "k")
    home.file("j.txt", "json\n")
    const cp = await home.run(["cp", "j.txt", "local://j.txt", "--json", "--mode", "cse-c", "--key", "k"])
    assert.strictEqual(cp.code, 0, cp.stderr)
    const events = cp.stdout.trim().split("\n").map((l) => JSON.parse(l))
    assert.deepStrictEqual(events.map((e) => e.event).filter((e) => e !== "progress"), ["plan", "start", "done", "summary"])
    assert.strictEqual(events.find((e) => e.event === "done").mode, "cse-c")
    const ls = JSON.parse((await home.run(["ls", "--json"])).stdout)
    assert.strictEqual(ls.objects[0].url, "local://j.txt")
    const m = JSON.parse((await home.run(["matrix", "--json", "--provider", "local-fs"])).stdout)
    assert.strictEqual(m.profiles.length, 1)
    assert.strictEqual(m.profiles[0].name, "local-fs")
  })

  it("matrix prints the table", async () => {
    const r = await home.run(["matrix"])
    assert.strictEqual(r.code, 0)
    assert.match(r.stdout, /aws-s3/)
    assert.match(r.stdout, /cse-kms/)
  })
})
