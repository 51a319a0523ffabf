/**
 * S3 access control lists, as far as the gateway has them: every bucket and object belongs to the
 * gateway user who created the bucket (S3's "bucket owner enforced" object ownership), who has
 * FULL_CONTROL, and nobody else is granted anything by an ACL — access is controlled by the
 * gateway's users config (each user's `buckets`). GetBucketAcl and GetObjectAcl return that
 * policy; PutBucketAcl, PutObjectAcl and the `x-amz-acl` / `x-amz-grant-*` headers of writes accept
 * what grants only the owner FULL_CONTROL (`private`, `bucket-owner-full-control`, or the same
 * as an AccessControlPolicy document) and refuse anything granting others access with 501.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import { errors, S3Error } from "./S3Error.js"
import * as Xml from "./Xml.js"

/**
 * The canned ACLs S3 defines.
 *
 * @since 0.1.0
 * @category constants
 */
export const CANNED = [
  "private",
  "public-read",
  "public-read-write",
  "authenticated-read",
  "aws-exec-read",
  "bucket-owner-read",
  "bucket-owner-full-control",
  "log-delivery-write"
] as const

/**
 * The canned ACLs that grant only the owner access (here the bucket owner owns every object).
 *
 * @since 0.1.0
 * @category constants
 */
export const ACCEPTED: ReadonlyArray<string> = ["private", "bucket-owner-full-control"]

const GRANT_HEADERS = ["x-amz-grant-read", "x-amz-grant-write", "x-amz-grant-read-acp", "x-amz-grant-write-acp", "x-amz-grant-full-control"] as const

const XSI = `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`

const notImplemented = (what: string) =>
  errors.notImplemented(
    `${what}: ACLs granting access to others are not implemented; access to buckets is controlled by the gateway's users config (each user's buckets)`
  )

const malformedAcl = () =>
  new S3Error({ code: "MalformedACLError", status: 400, detail: "The XML you provided was not well-formed or did not validate against our published schema" })

/**
 * Checks the ACL headers of a request (`x-amz-acl`, `x-amz-grant-*`): absent, or granting only
 * `owner` FULL_CONTROL. Returns whether any ACL header was given.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkHeaders = (headers: Readonly<Record<string, string>>, owner: string): Either.Either<boolean, S3Error> => {
  const canned = headers["x-amz-acl"]?.trim()
  const grants = GRANT_HEADERS.filter((h) => headers[h] !== undefined)
  if (canned !== undefined && grants.length > 0) {
    return Either.left(errors.invalidRequest("Specifying both Canned ACLs and Header Grants is not allowed"))
  }
  if (canned !== undefined) {
    if (!(CANNED as ReadonlyArray<string>).includes(canned)) return Either.left(errors.invalidArgument(`the canned ACL ${canned} is not valid`))
    if (!ACCEPTED.includes(canned)) return Either.left(notImplemented(`canned ACL ${canned}`))
    return Either.right(true)
  }
  for (const h of grants) {
    if (h !== "x-amz-grant-full-control") return Either.left(notImplemented(h))
    const grantees = headers[h]!.split(",").map((s) => s.trim()).filter((s) => s !== "")
    for (const g of grantees) {
      const m = /^id\s*=\s*"?([^"]*)"?$/i.exec(g)
      if (m === null || m[1] !== owner) return Either.left(notImplemented(`${h} ${g}`))
    }
  }
  return Either.right(grants.length > 0)
}

/**
 * Checks a PutBucketAcl / PutObjectAcl request: either ACL headers or an AccessControlPolicy
 * document (not both), granting only `owner` FULL_CONTROL.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkPut = (headers: Readonly<Record<string, string>>, body: string, owner: string): Either.Either<void, S3Error> => {
  const byHeader = checkHeaders(headers, owner)
  if (Either.isLeft(byHeader)) return Either.left(byHeader.left)
  const hasBody = body.trim() !== ""
  if (byHeader.right && hasBody) return Either.left(new S3Error({ code: "UnexpectedContent", status: 400, detail: "This request does not support content" }))
  if (byHeader.right) return Either.void
  if (!hasBody) return Either.left(errors.invalidRequest("a canned ACL header, grant headers or an AccessControlPolicy document is required"))
  const doc = Xml.parse(body)
  if (doc === undefined || Xml.localName(doc) !== "AccessControlPolicy") return Either.left(malformedAcl())
  const ownerNode = Xml.children(doc, "Owner")[0]
  const ownerId = ownerNode === undefined ? undefined : Xml.childText(ownerNode, "ID")?.trim()
  if (ownerId !== undefined && ownerId !== owner) return Either.left(notImplemented(`owner ${ownerId}`))
  const list = Xml.children(doc, "AccessControlList")
  if (list.length > 1) return Either.left(malformedAcl())
  for (const grant of list[0]?.children ?? []) {
    if (Xml.localName(grant) !== "Grant") return Either.left(malformedAcl())
    const grantee = Xml.children(grant, "Grantee")[0]
    const permission = Xml.childText(grant, "Permission")?.trim()
    if (grantee === undefined || permission === undefined) return Either.left(malformedAcl())
    if (!["FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP"].includes(permission)) return Either.left(malformedAcl())
    const id = Xml.childText(grantee, "ID")?.trim()
    const other = Xml.childText(grantee, "URI") ?? Xml.childText(grantee, "EmailAddress")
    if (id === undefined && other === undefined) return Either.left(malformedAcl())
    if (other !== undefined || id !== owner) return Either.left(notImplemented(`a grant to ${(other ?? id ?? "").trim()}`))
  }
  return Either.void
}

/**
 * The AccessControlPolicy of a bucket or object: its owner, with FULL_CONTROL.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toXml = (owner: string): string =>
  Xml.el("AccessControlPolicy", [
    Xml.el("Owner", [Xml.el("ID", owner), Xml.el("DisplayName", owner)]),
    Xml.el("AccessControlList", [
      Xml.el("Grant", [
        Xml.el("Grantee", [Xml.el("ID", owner), Xml.el("DisplayName", owner)], `${XSI} xsi:type="CanonicalUser"`),
        Xml.el("Permission", "FULL_CONTROL")
      ])
    ])
  ], Xml.S3_NS)
