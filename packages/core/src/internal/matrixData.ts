/**
 * The compatibility matrix as plain data. Each cell cites the public page its facts come from,
 * with a short quote where one was found, or a note saying what could not be confirmed. Edit here;
 * `docs/MATRIX.md` is generated from it (see the CompatibilityMatrix test).
 *
 * @since 0.1.0
 * @internal
 */
import type { Cell, Constraints, Profile, Source } from "../CompatibilityMatrix.js"

const DOCS = "docs only"
const UNVERIFIED = "not verified against a server"
const CEPH_TESTS = "ceph-rgw 16.2 (ceph/s3-tests, project measurement)"

const src = (url: string, quote?: string, note?: string): Source => ({
  url,
  ...(quote === undefined ? {} : { quote }),
  ...(note === undefined ? {} : { note })
})

type NativeSpec = {
  readonly label: string
  readonly feature: string
  readonly constraints?: Constraints
  readonly notes?: string
  readonly sources: readonly [Source, ...Array<Source>]
  readonly verifiedBy?: string
  readonly alternatives?: ReadonlyArray<string>
}

const native = (s: NativeSpec): Cell => ({
  kind: "native",
  label: s.label,
  feature: s.feature,
  constraints: s.constraints ?? {},
  notes: s.notes ?? "",
  sources: s.sources,
  verifiedBy: s.verifiedBy ?? DOCS,
  ...(s.alternatives === undefined ? {} : { alternatives: s.alternatives })
})

const unsupported = (s: {
  readonly reason: string
  readonly notes?: string
  readonly sources: readonly [Source, ...Array<Source>]
  readonly verifiedBy?: string
  readonly alternatives?: ReadonlyArray<string>
}): Cell => ({
  kind: "unsupported",
  reason: s.reason,
  constraints: {},
  notes: s.notes ?? "",
  sources: s.sources,
  verifiedBy: s.verifiedBy ?? DOCS,
  ...(s.alternatives === undefined ? {} : { alternatives: s.alternatives })
})

const client = (s: {
  readonly constraints?: Constraints
  readonly notes?: string
  readonly sources: readonly [Source, ...Array<Source>]
  readonly verifiedBy?: string
}): Cell => ({
  kind: "client-side",
  constraints: s.constraints ?? {},
  notes: s.notes ?? "",
  sources: s.sources,
  verifiedBy: s.verifiedBy ?? UNVERIFIED
})

const gateway = (feature: string, notes: string, sources: readonly [Source, ...Array<Source>]): Cell => ({
  kind: "via-gateway",
  feature,
  constraints: {},
  notes,
  sources,
  verifiedBy: UNVERIFIED
})

/** Client-side encryption needs nothing from the store but byte storage and user metadata. */
const CSE_NOTE =
  "objcrypt encrypts before upload (segmented AES-256-GCM, envelope in user metadata): the store keeps opaque bytes, so the ETag is that of the ciphertext."

const plain = (sources: readonly [Source, ...Array<Source>], notes = "", constraints: Constraints = {}, verifiedBy = DOCS): Cell =>
  native({ label: "plain", feature: "no encryption parameters sent", constraints, notes, sources, verifiedBy })

const SSE: Constraints = { exclusivePerObject: true }

// ---------------------------------------------------------------------------------------------
// Amazon S3
// ---------------------------------------------------------------------------------------------

const AWS_SSE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/serv-side-encryption.html"
const AWS_SSEC = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerSideEncryptionCustomerKeys.html"
const AWS_SSEC_SPEC = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/specifying-s3-c-encryption.html"
const AWS_SSEC_BLOCK = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/blocking-unblocking-s3-c-encryption-gpb.html"
const AWS_SSEC_FAQ = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/default-s3-c-encryption-setting-faq.html"
const AWS_OBJECT = "https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html"
const AWS_PUT_BUCKET_ENC = "https://awscli.amazonaws.com/v2/documentation/api/latest/reference/s3api/put-bucket-encryption.html"
const AWS_CSE = "https://docs.aws.amazon.com/amazon-s3-encryption-client/latest/developerguide/client-server-side.html"
const AWS_CSE_OPTIONS = "https://repost.aws/questions/QURhaO3484Q1Wt8Lnsn671kg/aws-kms-keys-for-encrypting-data-before-uploading-to-amazon-s3-glacier"

const exclusiveQuote = src(AWS_SSE, "You can't apply different types of server-side encryption to the same object simultaneously.")
const etagQuote = src(
  AWS_OBJECT,
  "Objects created by the PUT Object, POST Object, or Copy operation, or through the AWS Management Console, and are encrypted by SSE-C or SSE-KMS, have ETags that are not an MD5 digest of their object data.",
  "ETag description of the S3 API Object type (seen in SDK copies of the API reference); multipart objects never have an MD5 ETag"
)

const awsS3: Profile = {
  name: "aws-s3",
  title: "Amazon S3",
  provider: "s3",
  kms: "AWS KMS",
  notes:
    "Three mutually exclusive server-side modes (SSE-S3, SSE-KMS incl. DSSE-KMS, SSE-C), and client-side encryption with a KMS key or a client master key.",
  cells: {
    None: plain(
      [src(
        AWS_PUT_BUCKET_ENC,
        "By default, all buckets have a default encryption configuration that uses server-side encryption with Amazon S3 managed keys (SSE-S3)."
      )],
      "Objects sent without SSE headers get the bucket's default encryption (SSE-S3 unless the bucket says otherwise)."
    ),
    SseS3: native({
      label: "SSE-S3",
      feature: "SSE-S3 (Amazon S3 managed keys, x-amz-server-side-encryption: AES256)",
      constraints: { ...SSE, setAt: "request", etag: "md5" },
      notes: "Single-part objects keep an MD5 ETag; also the default of every bucket.",
      sources: [
        exclusiveQuote,
        src(AWS_CSE, "Amazon S3 supports encryption at rest with three mutually exclusive server-side encryption options.")
      ]
    }),
    SseKms: native({
      label: "SSE-KMS",
      feature: "SSE-KMS (AWS KMS keys, aws:kms) or DSSE-KMS (aws:kms:dsse)",
      constraints: { ...SSE, setAt: "request", etag: "not-md5", keyId: "AWS KMS key id, ARN or alias (a full ARN is recommended)" },
      notes: "Per request or as the bucket default; S3 Bucket Keys reduce KMS calls. Amazon S3 does not validate the key id given in PutBucketEncryption.",
      sources: [
        exclusiveQuote,
        etagQuote,
        src(
          AWS_PUT_BUCKET_ENC,
          "You can optionally configure default encryption for a bucket by using server-side encryption with Key Management Service (KMS) keys (SSE-KMS) or dual-layer server-side encryption with Amazon Web Services KMS keys (DSSE-KMS)."
        )
      ]
    }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C (customer-provided keys, x-amz-server-side-encryption-customer-*)",
      constraints: {
        ...SSE,
        setAt: "request",
        requiresTls: true,
        etag: "not-md5",
        blockedOnNewBuckets: {
          since: "2026-04",
          setting: "BlockedEncryptionTypes in the bucket's default encryption configuration",
          unblock: "allow SSE-C on the bucket: PutBucketEncryption with BlockedEncryptionTypes set to NONE (needs s3:PutEncryptionConfiguration)"
        }
      },
      notes:
        "Since April 2026 SSE-C is disabled by default on new general purpose buckets (all Regions except Middle East (Bahrain) and (UAE)) and on existing buckets of accounts that had no SSE-C objects: SSE-C writes get 403 AccessDenied until the bucket allows them, while existing SSE-C objects stay readable. Amazon S3 keeps a salted HMAC of the key, never the key.",
      sources: [
        src(
          AWS_SSEC,
          "Starting April 2026, SSE-C is disabled by default for all new general purpose buckets and existing buckets in accounts with no SSE-C encrypted objects."
        ),
        src(
          AWS_SSEC_BLOCK,
          "When SSE-C is blocked for a bucket, any PutObject, CopyObject, PostObject, or Multipart Upload or replication requests that specify SSE-C encryption will be rejected with an HTTP 403 AccessDenied error.",
          "valid values of the setting: SSE-C (block) and NONE (allow)"
        ),
        src(
          AWS_SSEC_FAQ,
          "All newly created buckets in all AWS Regions except Middle East (Bahrain) and Middle East (UAE) will have SSE-C disabled by default."
        ),
        src(
          AWS_SSEC_SPEC,
          "When using SSE-C, Amazon S3 rejects any requests made over HTTP.",
          "'You must use HTTPS' item of the SSE-C overview; translated back from the docs.amazonaws.cn zh-CN copy, the English wording may differ"
        ),
        etagQuote
      ]
    }),
    CseC: client({
      notes: `${CSE_NOTE} AWS documents client-side encryption with a key kept in the application (a client master key); objcrypt also reads and writes the S3 Encryption Client formats.`,
      sources: [src(
        AWS_CSE_OPTIONS,
        "Use a key that you store within your application.",
        "AWS answer listing the two client-side options of Amazon S3"
      )],
      verifiedBy: DOCS
    }),
    CseKms: client({
      notes: `${CSE_NOTE} The data key is generated and wrapped by AWS KMS (or any Kms).`,
      sources: [src(AWS_CSE_OPTIONS, "Use an AWS KMS key stored in AWS Key Management Service (AWS KMS).")],
      verifiedBy: DOCS
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Generic S3-compatible server
// ---------------------------------------------------------------------------------------------

const unknownServer = (mode: string): Cell =>
  unsupported({
    reason: `unknown S3-compatible server: it may accept ${mode} headers and silently ignore them, as s3rver and fauxqs do`,
    alternatives: [`probe the bucket to see whether it enforces ${mode}`],
    notes: "A probe that sees the server enforce the mode turns this cell native for that bucket.",
    sources: [src(
      AWS_SSE,
      undefined,
      "the S3 API defines the headers; whether a given server honours them is unknown. Project measurement (shared/ARCHITECTURE.md, Test servers): s3rver and fauxqs accept and ignore every SSE header"
    )],
    verifiedBy: "s3rver and fauxqs ignore SSE headers (project measurement)"
  })

const s3Compatible: Profile = {
  name: "s3-compatible",
  title: "S3-compatible server (unknown)",
  provider: "s3",
  kms: null,
  notes: "Any endpoint speaking the S3 API whose encryption support is unknown: only client-side modes are safe until a probe says more.",
  cells: {
    None: plain([src(AWS_SSE, undefined, "plain PUT/GET of the S3 API")]),
    SseS3: unknownServer("SSE-S3"),
    SseKms: unknownServer("SSE-KMS"),
    SseC: unknownServer("SSE-C"),
    CseC: client({ notes: CSE_NOTE, sources: [src(AWS_CSE, undefined, "client-side encryption needs only byte storage and user metadata")] }),
    CseKms: client({
      notes: `${CSE_NOTE} Any Kms works, objcrypt's local KMS included.`,
      sources: [src(AWS_CSE, undefined, "client-side encryption needs only byte storage and user metadata")]
    })
  }
}

// ---------------------------------------------------------------------------------------------
// MinIO
// ---------------------------------------------------------------------------------------------

const MINIO_SSE = "https://min.io/docs/minio/macos/administration/server-side-encryption.html"
const MINIO_ETAG_COMMIT = "https://gitlab.com/titan-minio/minio/-/blob/v0.0.8/cmd/disk-cache-utils.go"
const MINIO_TLS = "https://docs.min.io/minio/baremetal/security/security-overview.html"
const MINIO_SSES3 = "https://docs.min.io/community/minio-object-store/administration/server-side-encryption/server-side-encryption-sse-s3.html"
const MINIO_SSEC = "https://github.com/tofbabs/cookbook/blob/master/docs/how-to-use-minio-server-side-encryption-with-aws-cli.md"
const MINIO_ETAG = "https://pkg.go.dev/github.com/Davisanity/minio/internal/etag"
const KES_SETUP = "MinIO KES connected to an external KMS (MINIO_KMS_KES_KEY_NAME)"

const minioTls = src(MINIO_TLS, "MinIO SSE requires enabling Network Encryption (TLS).")

const minio: Profile = {
  name: "minio",
  title: "MinIO",
  provider: "s3",
  kms: "MinIO KES (in front of an external KMS)",
  notes: "SSE-S3 and SSE-KMS need KES configured by the operator; once enabled it cannot be turned off.",
  cells: {
    None: plain(
      [src(MINIO_SSE, undefined, "a bucket default (mc encrypt set) applies SSE-S3 or SSE-KMS to plain PUTs")],
      "A bucket default set with mc encrypt set applies to objects sent without SSE headers."
    ),
    SseS3: native({
      label: "SSE-S3",
      feature: "SSE-S3 (one external key for the deployment, through KES)",
      constraints: { ...SSE, setAt: "request", requiresTls: true, etag: "md5", serverSetup: KES_SETUP },
      sources: [
        src(MINIO_SSES3, "MinIO SSE-S3 en/decrypts objects using an External Key (EK) managed by a Key Management System (KMS)."),
        minioTls,
        src(MINIO_ETAG, "In case of SSE-S3, the ETag of an object is computed the same as for single resp. multipart plaintext objects.", "MinIO's internal etag package documentation (a fork's copy)")
      ]
    }),
    SseKms: native({
      label: "SSE-KMS",
      feature: "SSE-KMS (external keys held by the KMS behind KES)",
      constraints: { ...SSE, setAt: "request", requiresTls: true, etag: "not-md5", serverSetup: KES_SETUP, keyId: "name of a KES external key (EK)" },
      notes: "A bucket can default to one key; clients may override it per write.",
      sources: [
        src(
          MINIO_SSE,
          "Clients can override the bucket-default EK by specifying an explicit key as part of the write operation."
        ),
        minioTls,
        src(MINIO_ETAG_COMMIT, "The ETag of an SSE-C or SSE-KMS single part object does not correspond to its content MD5 and can be a random value.", "message of the MinIO commit that added etag.Format, in a mirror")
      ]
    }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C (customer-provided keys)",
      constraints: { ...SSE, setAt: "request", requiresTls: true, etag: "not-md5" },
      notes: "Whether SSE-C works on a deployment without KES was not confirmed.",
      sources: [
        src(MINIO_SSEC, "the minio server will reject any SSE-C request made over an insecure (non-TLS) connection", "MinIO cookbook page (older docs)"),
        src(MINIO_ETAG_COMMIT, "The ETag of an SSE-C or SSE-KMS single part object does not correspond to its content MD5 and can be a random value.", "message of the MinIO commit that added etag.Format, in a mirror")
      ]
    }),
    CseC: client({ notes: CSE_NOTE, sources: [src(MINIO_SSE, undefined, "client-side encryption needs only byte storage and user metadata")] }),
    CseKms: client({ notes: CSE_NOTE, sources: [src(MINIO_SSE, undefined, "client-side encryption needs only byte storage and user metadata")] })
  }
}

// ---------------------------------------------------------------------------------------------
// Ceph RGW (Debian's 16.2, our test server)
// ---------------------------------------------------------------------------------------------

const CEPH_ENC = "https://docs.ceph.com/en/quincy/radosgw/encryption/"
const CEPH_MEASURED = "https://github.com/ceph/s3-tests"
const cephTls = src(CEPH_ENC, "Requests for server-side encryption must be sent over a secure HTTPS connection to avoid sending secrets in plaintext.")
const cephMeasured = (what: string) =>
  src(CEPH_MEASURED, undefined, `measured on Debian's Ceph 16.2 (pacific) against ceph/s3-tests (shared/ARCHITECTURE.md, Test servers): ${what}`)

const cephRgw: Profile = {
  name: "ceph-rgw",
  title: "Ceph RGW 16.2",
  provider: "s3",
  kms: "Barbican, Vault, KMIP or the 'testing' backend (operator configured)",
  notes:
    "Debian's Ceph 16.2 (pacific), our test server. No bucket default encryption (Put/Get/DeleteBucketEncryption fail); rejects aws-chunked streaming uploads (411); no GetObjectAttributes. `rgw crypt require ssl = false` lifts the TLS check for tests.",
  cells: {
    None: plain(
      [cephMeasured("Put/Get/DeleteBucketEncryption fail: there is no bucket default encryption")],
      "No bucket default encryption exists on 16.2, so plain PUTs are stored as sent.",
      {},
      CEPH_TESTS
    ),
    SseS3: unsupported({
      reason: "Ceph RGW 16.2 accepts x-amz-server-side-encryption: AES256 but stores the object in plain and returns no SSE header",
      notes: "Newer Ceph releases may implement SSE-S3; not confirmed here. A probe that sees it enforced turns the cell native.",
      sources: [cephMeasured("SSE-S3 (AES256) is ignored: stored plain, no response header"), src(CEPH_ENC, undefined, "encryption documentation (later release)")],
      verifiedBy: CEPH_TESTS
    }),
    SseKms: native({
      label: "SSE-KMS",
      feature: "SSE-KMS (key ids resolved by the configured KMS backend)",
      constraints: {
        ...SSE,
        setAt: "request",
        requiresTls: true,
        serverSetup: "rgw crypt s3 kms backend (barbican, vault, kmip, or testing with rgw crypt s3 kms encryption keys)",
        keyId: "a key id known to the KMS backend"
      },
      notes:
        "Enforced on put, get, head, multipart and POST. CopyObject from an SSE-KMS source answers 501 and destination SSE headers on copy are ignored. RGW does not reject conflicting SSE headers: the driver must send exactly one mode.",
      sources: [cephMeasured("passes every SSE-KMS test for put, get, head, multipart and POST; 501 on CopyObject from an SSE-KMS source"), cephTls],
      verifiedBy: CEPH_TESTS
    }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C (customer-provided keys)",
      constraints: { ...SSE, setAt: "request", requiresTls: true },
      notes:
        "Enforced: a wrong or missing key is refused. CopyObject from an SSE-C source answers 501; UploadPartCopy rejects copy-source SSE-C headers. ETag behaviour under SSE was not documented.",
      sources: [cephMeasured("passes every SSE-C test; wrong or missing key refused, ciphertext in RADOS"), cephTls],
      verifiedBy: CEPH_TESTS
    }),
    CseC: client({ notes: `${CSE_NOTE} Upload without aws-chunked encoding (RGW 16.2 answers 411).`, sources: [cephMeasured("rejects aws-chunked streaming uploads (411)")] }),
    CseKms: client({ notes: `${CSE_NOTE} Upload without aws-chunked encoding (RGW 16.2 answers 411).`, sources: [cephMeasured("rejects aws-chunked streaming uploads (411)")] })
  }
}

// ---------------------------------------------------------------------------------------------
// IBM Cloud Object Storage
// ---------------------------------------------------------------------------------------------

const IBM_SSEC = "https://cloud.ibm.com/docs/cloud-object-storage?topic=cloud-object-storage-sse-c"
const IBM_KP = "https://cloud.ibm.com/docs/cloud-object-storage?topic=cloud-object-storage-kp"
const IBM_HPCS = "https://cloud.ibm.com/docs/cloud-object-storage?topic=cloud-object-storage-hpcs"
const IBM_SECURITY = "https://github.com/ibm-cloud-docs/cloud-object-storage/blob/master/data-security-encryption.md"

const ibmCos: Profile = {
  name: "ibm-cos",
  title: "IBM Cloud Object Storage",
  provider: "s3",
  kms: "IBM Key Protect / Hyper Protect Crypto Services",
  notes: "Every object is encrypted at rest; customer keys per object (SSE-C) or per bucket at creation (SSE-KP / SSE-HPCS).",
  cells: {
    None: plain([src(IBM_SECURITY, "All data in IBM Cloud Object Storage is encrypted at rest.", "docs source, product name rendered")]),
    SseS3: native({
      label: "always",
      feature: "IBM-managed encryption at rest (per-object keys, SecureSlice)",
      constraints: { ...SSE, setAt: "always-on" },
      notes: "objcrypt sends no x-amz-server-side-encryption header: whether IBM COS accepts AES256 was not confirmed.",
      sources: [src(
        IBM_SECURITY,
        "All data in IBM Cloud Object Storage is encrypted at rest. This technology individually encrypts each object by using per-object generated keys."
      )]
    }),
    SseKms: native({
      label: "SSE-KP",
      feature: "SSE-KP (IBM Key Protect) or SSE-HPCS (Hyper Protect Crypto Services) root key on the bucket",
      constraints: { ...SSE, setAt: "bucket-creation", keyPerRequest: false, keyId: "CRN of the Key Protect or HPCS root key" },
      notes:
        "The root key's CRN is sent as a header when the bucket is created; no way to add or change it on an existing bucket was found in the docs. Objects need no per-request KMS header.",
      alternatives: ["create a new bucket with a Key Protect root key"],
      sources: [
        src(IBM_KP, "The CRN is sent in a header during bucket creation."),
        src(IBM_HPCS, "The CRN is sent in a header during bucket creation."),
        src(IBM_SECURITY, "root keys can be provided on a per-object basis that uses SSE-C, or a per-bucket basis that uses SSE-KP.")
      ]
    }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C (customer-provided keys)",
      constraints: { ...SSE, setAt: "request", requiresTls: true, etag: "random" },
      sources: [src(
        IBM_SSEC,
        "Any request that uses SSE-C headers must be sent by using SSL. The ETag values in response headers are not the MD5 hash of the object, but a randomly generated 32-byte hexadecimal string."
      )]
    }),
    CseC: client({ notes: CSE_NOTE, sources: [src(IBM_SECURITY, undefined, "client-side encryption needs only byte storage and user metadata")] }),
    CseKms: client({ notes: CSE_NOTE, sources: [src(IBM_SECURITY, undefined, "client-side encryption needs only byte storage and user metadata")] })
  }
}

// ---------------------------------------------------------------------------------------------
// ABCI Cloud Storage
// ---------------------------------------------------------------------------------------------

const ABCI_ENC = "https://docs.abci.ai/en/abci-cloudstorage/encryption/"

const abci: Profile = {
  name: "abci",
  title: "ABCI Cloud Storage",
  provider: "s3",
  kms: null,
  notes: "SSE-S3-equivalent encryption only for buckets created encrypted; no SSE-C, no SSE-KMS, no KMS service; client-side encryption works. Endpoint https://s3.abci.ai.",
  cells: {
    None: plain([src(ABCI_ENC, undefined, "plain S3 PUT/GET over https://s3.abci.ai")], "Objects in a bucket created encrypted are encrypted anyway."),
    SseS3: native({
      label: "bucket SSE",
      feature: "SSE-S3-equivalent bucket encryption (create-encrypted-bucket)",
      constraints: { ...SSE, setAt: "bucket-creation" },
      notes:
        "Only buckets created with encryption (ABCI's create-encrypted-bucket) encrypt their objects; Amazon S3's SSE request headers do not work, so objcrypt sends none and relies on the bucket. ABCI's newer page says create-encrypted-bucket was to be retired by August 2022 in favour of aws-cli ('Enabling Default Bucket Encryption'); whether that applies to an existing bucket was not confirmed, so the cell stays creation-time until a probe says otherwise.",
      alternatives: ["create a new bucket with create-encrypted-bucket"],
      sources: [
        src(
          ABCI_ENC,
          "ABCI Cloud Storage provides SSE functionality equivalent to SSE-S3. However, it is technically slightly different from SSE-S3 provided by Amazon S3, so that APIs available for Amazon S3 don't work for ABCI Cloud Storage."
        ),
        src(ABCI_ENC, "To create buckets with activated SSE, use create-encrypted-bucket provided by ABCI system instead of using the aws commands."),
        src(
          ABCI_ENC,
          "the create-encrypted-bucket command is scheduled to be discontinued by August 2022. After August, please use the aws-cli command instead of the create-encrypted-bucket command.",
          "newer revision of the same page"
        )
      ]
    }),
    SseKms: unsupported({
      reason: "ABCI Cloud Storage offers no SSE-KMS and no KMS service",
      sources: [src(ABCI_ENC, "Neither SSE-C nor SSE KMS are available for ABCI Cloud Storage.")]
    }),
    SseC: unsupported({
      reason: "ABCI Cloud Storage offers no SSE-C",
      sources: [src(ABCI_ENC, "Neither SSE-C nor SSE KMS are available for ABCI Cloud Storage.")]
    }),
    CseC: client({
      notes: CSE_NOTE,
      sources: [src(ABCI_ENC, "CSE is available for ABCI Cloud Storage.")],
      verifiedBy: DOCS
    }),
    CseKms: client({
      constraints: { noProviderKms: true },
      notes: `${CSE_NOTE} ABCI has no KMS: the data key comes from objcrypt's local KMS (packages/keys) or another reachable KMS.`,
      sources: [src(
        ABCI_ENC,
        "However, ABCI doesn't offer Key Management Service (KMS), so CSE using encryption keys registered to KMS cannot be used."
      )],
      verifiedBy: DOCS
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Backblaze B2
// ---------------------------------------------------------------------------------------------

const B2_SSE = "https://www.backblaze.com/docs/cloud-storage-server-side-encryption"
const B2_DEFAULT = "https://www.backblaze.com/docs/cloud-storage-server-side-encryption-with-the-native-api"
const B2_SSEC = "https://www.backblaze.com/docs/cloud-storage-use-sse-with-customer-managed-keys-ssec"
const B2_EXAMPLES = "https://help.backblaze.com/hc/en-us/articles/1260803371149-SSE-Command-Line-and-API-Examples"
const b2Options = src(B2_SSE, "You have two options for encrypting data with Backblaze B2 server-side encryption: SSE-B2 and SSE-C.")

const backblazeB2: Profile = {
  name: "backblaze-b2",
  title: "Backblaze B2",
  provider: "s3",
  kms: null,
  notes: "S3-compatible API. SSE-B2 is the default for new uploads; SSE-C per object; no KMS.",
  cells: {
    None: plain(
      [src(B2_DEFAULT, "The B2 Native API encrypts new uploads and destination copies in new buckets with SSE-B2 and AES-256 by default.")],
      "Existing buckets are switched to the SSE-B2 default gradually."
    ),
    SseS3: native({
      label: "SSE-B2",
      feature: "SSE-B2 (Backblaze-managed keys, AES256)",
      constraints: { ...SSE, setAt: "request" },
      notes: "The S3-compatible API takes x-amz-server-side-encryption: AES256; SSE-B2 is also the bucket default.",
      sources: [b2Options, src(B2_EXAMPLES, undefined, "shows aws s3 cp --sse AES256 against the B2 S3 endpoint")]
    }),
    SseKms: unsupported({
      reason: "Backblaze B2 offers no SSE-KMS (only SSE-B2 and SSE-C)",
      sources: [b2Options]
    }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C (customer-managed keys)",
      constraints: { ...SSE, setAt: "request" },
      notes: "B2 keeps a hash of the key to validate requests. A TLS requirement for SSE-C is not stated in the pages found; objcrypt sends customer keys over https only anyway.",
      sources: [
        src(B2_SSEC, "You must provide the same key with every protected request, and Backblaze cannot recover the object if you lose the key."),
        b2Options
      ]
    }),
    CseC: client({ notes: CSE_NOTE, sources: [src(B2_SSE, undefined, "client-side encryption needs only byte storage and user metadata")] }),
    CseKms: client({ notes: CSE_NOTE, sources: [src(B2_SSE, undefined, "client-side encryption needs only byte storage and user metadata")] })
  }
}

// ---------------------------------------------------------------------------------------------
// Wasabi
// ---------------------------------------------------------------------------------------------

const WASABI_SSE = "https://wasabi.com/wp-content/themes/wasabi/docs/API_Guide/topics/Object_Server-Side_Encryption.htm"
const WASABI_SSEC = "https://docs.wasabi.com/docs/how-does-sse-c-encryption-work-with-wasabi"
const wasabiNoKms = src(
  WASABI_SSE,
  "Wasabi does not support a key management service. Hence, the “x-amz-server-side-encryption” is not supported along with all the “aws:kms” functionality."
)

const wasabi: Profile = {
  name: "wasabi",
  title: "Wasabi",
  provider: "s3",
  kms: null,
  notes: "Always encrypts at rest; SSE-C per object; no x-amz-server-side-encryption header and no KMS.",
  cells: {
    None: plain([src(WASABI_SSE, "Wasabi encrypts all data stored at rest regardless of the requested encryption.")]),
    SseS3: native({
      label: "always",
      feature: "always-on encryption at rest (Wasabi-generated per-object keys)",
      constraints: { ...SSE, setAt: "always-on" },
      notes: "Wasabi does not support the x-amz-server-side-encryption header: objcrypt sends nothing for sse-s3.",
      sources: [src(WASABI_SSE, "Wasabi encrypts all data stored at rest regardless of the requested encryption."), wasabiNoKms]
    }),
    SseKms: unsupported({ reason: "Wasabi has no key management service: aws:kms is not supported", sources: [wasabiNoKms] }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C (customer-provided keys)",
      constraints: { ...SSE, setAt: "request", etag: "md5" },
      notes: "Unlike Amazon S3, Wasabi keeps the MD5 of the uploaded data as the ETag under SSE-C. A TLS requirement is not stated in the pages found.",
      sources: [
        src(WASABI_SSE, "Wasabi stores an MD5 for the data that is always the uploaded data regardless of server-side encryption."),
        src(WASABI_SSE, "These parameters work identical to AWS S3."),
        src(WASABI_SSEC, "Wasabi does not store the encryption key you provide.")
      ]
    }),
    CseC: client({ notes: CSE_NOTE, sources: [src(WASABI_SSE, undefined, "client-side encryption needs only byte storage and user metadata")] }),
    CseKms: client({ notes: CSE_NOTE, sources: [src(WASABI_SSE, undefined, "client-side encryption needs only byte storage and user metadata")] })
  }
}

// ---------------------------------------------------------------------------------------------
// Cloudflare R2
// ---------------------------------------------------------------------------------------------

const R2_SECURITY = "https://developers.cloudflare.com/r2/reference/data-security/"
const R2_SSEC = "https://developers.cloudflare.com/r2/examples/ssec"
const r2AtRest = src(R2_SECURITY, "All objects stored in R2, including their metadata, are encrypted at rest.")

const cloudflareR2: Profile = {
  name: "cloudflare-r2",
  title: "Cloudflare R2",
  provider: "s3",
  kms: null,
  notes: "Always encrypts at rest (AES-256-GCM, Cloudflare-managed keys); SSE-C per object; no KMS integration found.",
  cells: {
    None: plain([r2AtRest]),
    SseS3: native({
      label: "always",
      feature: "always-on encryption at rest (Cloudflare-managed keys, AES-256-GCM)",
      constraints: { ...SSE, setAt: "always-on" },
      notes: "Whether R2 accepts x-amz-server-side-encryption: AES256 was not confirmed: objcrypt sends nothing.",
      sources: [r2AtRest, src(R2_SECURITY, "R2 uses GCM (Galois/Counter Mode) as its preferred mode.")]
    }),
    SseKms: unsupported({
      reason: "Cloudflare R2 documents no SSE-KMS or customer-managed KMS keys",
      notes: "Not found in the R2 pages searched; a probe can override.",
      sources: [r2AtRest]
    }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C (customer-provided keys; also ssecKey in the Workers binding)",
      constraints: { ...SSE, setAt: "request" },
      notes: "TLS requirement and ETag behaviour under SSE-C not confirmed.",
      sources: [src(R2_SSEC, "While SSE-C does provide MD5 hashes, this hash can be used for identification of keys only.")]
    }),
    CseC: client({ notes: CSE_NOTE, sources: [src(R2_SECURITY, undefined, "client-side encryption needs only byte storage and user metadata")] }),
    CseKms: client({ notes: CSE_NOTE, sources: [src(R2_SECURITY, undefined, "client-side encryption needs only byte storage and user metadata")] })
  }
}

// ---------------------------------------------------------------------------------------------
// Google Cloud Storage
// ---------------------------------------------------------------------------------------------

const GCS_CSEK = "https://cloud.google.com/storage/docs/encryption/customer-supplied-keys"
const GCS_CMEK = "https://cloud.google.com/storage/docs/encryption/customer-managed-keys"
const GCS_DEFAULT = "https://cloud.google.com/storage/docs/encryption/default-keys"
const GCS_ENFORCE = "https://cloud.google.com/storage/docs/encryption/enforce-encryption-types"
const GCS_BUCKET_ENC = "https://googleapis.dev/ruby/google-api-client/v0.19.5/Google/Apis/StorageV1/Bucket/Encryption.html"
const GCS_KMS_ENCRYPT = "https://cloud.google.com/kms/docs/reference/rest/v1/projects.locations.keyRings.cryptoKeys/encrypt"

const gmek = { field: "encryption.googleManagedEncryptionEnforcementConfig.restrictionMode", restrictedWhen: "FullyRestricted" }
const enforceQuote = src(
  GCS_ENFORCE,
  "You can configure a bucket to enforce or restrict the use of standard encryption (Google default encryption), customer-managed encryption keys (CMEK), or customer-supplied encryption keys (CSEK) for any new objects that are created within the bucket.",
  "restrictionMode is NotRestricted or FullyRestricted per key kind (gcloud JSON: gmekEnforcement, cmekEnforcement, csekEnforcement)"
)
const gcsCse = (): Cell =>
  client({
    constraints: { bucketEnforcement: gmek },
    verifiedBy: "test-kit GCS emulator (driver-gcs tests), not a real GCS bucket",
    notes: `${CSE_NOTE} The ciphertext is stored under Google-managed keys (or the bucket's default CMEK), so a bucket that restricts Google-managed encryption needs a default CMEK key.`,
    sources: [enforceQuote]
  })

const gcs: Profile = {
  name: "gcs",
  title: "Google Cloud Storage",
  provider: "gcs",
  kms: "Cloud KMS",
  notes:
    "Every object is encrypted: Google-managed keys by default, CMEK (Cloud KMS) per object or bucket default, CSEK per object. A bucket's encryption enforcement config can forbid any of the three for new objects.",
  cells: {
    None: native({
      label: "plain",
      feature: "no encryption parameters (Google-managed keys, or the bucket's default CMEK)",
      constraints: { bucketEnforcement: gmek },
      sources: [src(GCS_DEFAULT, undefined, "standard Cloud Storage encryption applies to every object"), enforceQuote],
      verifiedBy: DOCS
    }),
    SseS3: native({
      label: "Google-managed",
      feature: "Google-managed encryption keys (standard encryption)",
      constraints: { ...SSE, setAt: "always-on", bucketEnforcement: gmek },
      notes: "Nothing is sent. On a bucket with a default CMEK key (defaultKmsKeyName) plain uploads get that key instead.",
      sources: [src(GCS_DEFAULT, undefined, "default encryption page (linked as 'standard Cloud Storage encryption' from the CSEK page)"), enforceQuote]
    }),
    SseKms: native({
      label: "CMEK",
      feature: "customer-managed encryption keys (CMEK, Cloud KMS)",
      constraints: {
        ...SSE,
        setAt: "request",
        keyId: "Cloud KMS key name projects/…/locations/…/keyRings/…/cryptoKeys/…",
        bucketEnforcement: { field: "encryption.customerManagedEncryptionEnforcementConfig.restrictionMode", restrictedWhen: "FullyRestricted" }
      },
      verifiedBy: "test-kit GCS emulator (driver-gcs tests), not a real GCS bucket",
      notes: "kmsKeyName per object, or the bucket's defaultKmsKeyName. The CMEK page itself was not fetched; the field is confirmed in the JSON API client documentation.",
      sources: [
        src(GCS_CMEK, undefined, "CMEK overview (not fetched)"),
        src(GCS_BUCKET_ENC, "A Cloud KMS key that will be used to encrypt objects inserted into this bucket, if no encryption method is specified."),
        enforceQuote
      ]
    }),
    SseC: native({
      label: "CSEK",
      feature: "customer-supplied encryption keys (CSEK, x-goog-encryption-*)",
      constraints: {
        ...SSE,
        setAt: "request",
        requiresTls: true,
        etag: "hidden-without-key",
        bucketEnforcement: { field: "encryption.customerSuppliedEncryptionEnforcementConfig.restrictionMode", restrictedWhen: "FullyRestricted" }
      },
      verifiedBy: "test-kit GCS emulator (driver-gcs tests), not a real GCS bucket",
      notes:
        "Per object only (no bucket-default CSEK). GCS keeps a hash of the key; the object's MD5 and CRC32C are encrypted with the key and not returned without it.",
      sources: [
        src(GCS_CSEK, "TLS is required when you provide an encryption key.", "HTTPS check section; translated back from the zh-CN copy of the page, the English wording may differ"),
        src(
          GCS_CSEK,
          "If you attempt to read the metadata for an object without providing the key, you receive metadata such as the object name and Content-Type, but not the object's CRC32C checksum or MD5 hash.",
          "translated back from the zh-CN copy of the page"
        ),
        src(GCS_CSEK, "You cannot set a default customer-supplied encryption key for a bucket.", "translated back from the zh-CN copy of the page"),
        enforceQuote
      ]
    }),
    CseC: gcsCse(),
    CseKms: client({
      constraints: { bucketEnforcement: gmek },
      verifiedBy: `storage: test-kit GCS emulator (driver-gcs tests); Cloud KMS (driver-gcs CloudKms): ${UNVERIFIED}, its REST requests and error answers checked at the HTTP layer only`,
      notes:
        `${CSE_NOTE} With a Google key, driver-gcs's CloudKms wraps the data key with Cloud KMS cryptoKeys.encrypt, the encryption context bound as additionalAuthenticatedData; any other Kms (local, AWS KMS) works as well. The ciphertext is stored under Google-managed keys (or the bucket's default CMEK).`,
      sources: [
        src(GCS_KMS_ENCRYPT, "Encrypts data, so that it can only be recovered by a call to cryptoKeys.decrypt."),
        src(GCS_KMS_ENCRYPT, "Optional data that, if specified, must also be provided during decryption through DecryptRequest.additional_authenticated_data.", "additionalAuthenticatedData field"),
        enforceQuote
      ]
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Azure Blob Storage
// ---------------------------------------------------------------------------------------------

const AZ_CPK = "https://learn.microsoft.com/en-us/azure/storage/blobs/encryption-customer-provided-keys"
const AZ_SCOPE = "https://learn.microsoft.com/en-us/azure/storage/blobs/encryption-scope-manage"
const AZ_SCOPE_OPTS = "https://learn.microsoft.com/en-us/dotnet/api/azure.storage.blobs.models.blobcontainerencryptionscopeoptions"
const AZ_KV_WRAP = "https://learn.microsoft.com/en-us/rest/api/keyvault/keys/wrap-key/wrap-key"
const azAccountKey = src(
  AZ_CPK,
  "If the client application sends an encryption key on the request, and the storage account is also encrypted using a Microsoft-managed key or a customer-managed key, then Azure Storage uses the key provided on the request for encryption and decryption.",
  "translated back from the ko-KR copy of the page; implies every account is encrypted with a Microsoft-managed or customer-managed key (the storage-service-encryption page was not fetched)"
)

const azureBlob: Profile = {
  name: "azure-blob",
  title: "Azure Blob Storage",
  provider: "azure",
  kms: "Azure Key Vault",
  notes:
    "Every blob is encrypted with the account's key (Microsoft-managed, or customer-managed in Key Vault); encryption scopes per blob or container; customer-provided keys (CPK) per request. Azurite supports neither CPK nor scopes: those mappings are tested at the wire.",
  cells: {
    None: native({
      label: "plain",
      feature: "no encryption parameters (the account's key applies)",
      constraints: { setAt: "always-on" },
      sources: [azAccountKey],
      verifiedBy: UNVERIFIED
    }),
    SseS3: native({
      label: "MMK",
      feature: "Microsoft-managed keys (Azure Storage encryption)",
      constraints: { ...SSE, setAt: "always-on" },
      notes: "Nothing is sent; the account may instead use a customer-managed key for its default encryption.",
      sources: [azAccountKey],
      verifiedBy: `${UNVERIFIED} (Azurite ignores encryption)`
    }),
    SseKms: native({
      label: "scope",
      feature: "encryption scope (Microsoft-managed or Key Vault customer-managed key)",
      constraints: {
        ...SSE,
        setAt: "request",
        keyId: "name of an encryption scope on the storage account",
        serverSetup: "create the encryption scope on the account first (management plane); a Key Vault key needs purge protection"
      },
      notes:
        "x-ms-encryption-scope per blob, or a container default (defaultEncryptionScope); with preventEncryptionScopeOverride the container refuses any other scope.",
      sources: [
        src(
          AZ_SCOPE,
          "You can create an encryption scope that is protected with a Microsoft-managed key or with a customer-managed key that is stored in an Azure Key Vault."
        ),
        src(AZ_SCOPE, "You can also specify a default encryption scope when you create a container, which automatically applies to all blobs in the container."),
        src(AZ_SCOPE_OPTS, "If true, prevents any request from specifying a different encryption scope than the scope set on the container.", "preventEncryptionScopeOverride (wording of the .NET docs)")
      ],
      verifiedBy: "verified at the wire only: driver-azure tests record the x-ms-encryption-scope header the real SDK sends (Azurite ignores scopes)"
    }),
    SseC: native({
      label: "CPK",
      feature: "customer-provided key (CPK, x-ms-encryption-key)",
      constraints: { ...SSE, setAt: "request", requiresTls: true },
      notes:
        "x-ms-encryption-key, -key-sha256 and -algorithm (AES256); Azure keeps a SHA-256 of the key and a request without the key on a CPK blob fails with 409. The SDK also refuses CPK over plain http.",
      sources: [
        src(AZ_CPK, "To send the encryption key as part of the request, a client must establish a secure connection to Azure Storage using HTTPS.", "translated back from the ko-KR and ja-JP copies of the page"),
        src(AZ_CPK, "Azure Storage writes an SHA-256 hash of the encryption key alongside the blob's contents.")
      ],
      verifiedBy: "verified at the wire only: driver-azure tests record the x-ms-encryption-key/-sha256/-algorithm headers the real SDK sends over https (Azurite lacks CPK)"
    }),
    CseC: client({ notes: CSE_NOTE, sources: [src(AZ_CPK, undefined, "client-side encryption needs only byte storage and user metadata")] }),
    CseKms: client({
      notes:
        `${CSE_NOTE} The data key can be wrapped by Azure Key Vault or Managed HSM (driver-azure KeyVaultKms: wrapKey with RSA-OAEP-256, or A256KW on oct-HSM keys; the encryption context is bound by an AES-GCM layer because wrapKey has no AAD) or by any Kms. driver-azure's Azure client-side encryption v2 can also wrap its content key with a Key Vault key directly, as the .NET/Java/Python SDKs do.`,
      sources: [
        src(AZ_CPK, undefined, "client-side encryption needs only byte storage and user metadata"),
        src(
          AZ_KV_WRAP,
          "The WRAP operation supports encryption of a symmetric key using a key encryption key that has previously been stored in an Azure Key Vault.",
          "Key Vault REST reference, Wrap Key (POST {vaultBaseUrl}/keys/{key-name}/{key-version}/wrapkey)"
        )
      ],
      verifiedBy: `Key Vault: ${UNVERIFIED} (driver-azure tests check the real @azure/keyvault-keys requests at the HTTP layer); the client-side format: Azurite`
    })
  }
}

// ---------------------------------------------------------------------------------------------
// objcrypt's own: local directory and gateway
// ---------------------------------------------------------------------------------------------

const OBJCRYPT = "https://github.com/objcrypt/objcrypt"
const design = (what: string) => src(OBJCRYPT, undefined, `project design (shared/ARCHITECTURE.md): ${what}`)

const localFs: Profile = {
  name: "local-fs",
  title: "Local directory (driver-fs)",
  provider: "fs",
  kms: null,
  notes: "The embedded default of the CLI and the gateway. No server: server-side modes exist only through the gateway, which stores ciphertext here.",
  cells: {
    None: plain([design("driver-fs stores objects as files, metadata beside the data")], "", {}, UNVERIFIED),
    SseS3: gateway("the objcrypt gateway's SSE-S3, stored as ciphertext in driver-fs", "The gateway implements SSE-S3 with the client-side format under its own key.", [
      design("the gateway implements SSE-S3, SSE-C and SSE-KMS itself with the client-side formats; driver-fs is its default backend")
    ]),
    SseKms: gateway("the objcrypt gateway's SSE-KMS, stored as ciphertext in driver-fs", "Needs a Kms on the gateway (objcrypt's local KMS works).", [
      design("the gateway implements SSE-KMS itself; driver-fs is its default backend")
    ]),
    SseC: gateway("the objcrypt gateway's SSE-C, stored as ciphertext in driver-fs", "The customer key only ever travels to the gateway.", [
      design("the gateway implements SSE-C itself; driver-fs is its default backend")
    ]),
    CseC: client({ notes: CSE_NOTE, sources: [design("client-side formats work on any ObjectStore")] }),
    CseKms: client({
      constraints: { noProviderKms: true },
      notes: `${CSE_NOTE} objcrypt's local KMS provides the KMS.`,
      sources: [design("the local KMS implements the Kms contract over the key store")]
    })
  }
}

const objcryptGateway: Profile = {
  name: "objcrypt-gateway",
  title: "objcrypt gateway",
  provider: "s3",
  kms: "objcrypt local KMS, or AWS KMS (gateway configuration)",
  notes: "S3-compatible server of this project, reached with the S3 driver; stores only ciphertext in its backend and implements SSE-S3, SSE-KMS, SSE-C and bucket default encryption itself.",
  cells: {
    None: plain([design("the gateway stores what it is given unless a bucket default applies")], "A bucket default encryption configured on the gateway applies.", {}, UNVERIFIED),
    SseS3: native({
      label: "SSE-S3",
      feature: "SSE-S3 implemented by the gateway (client-side format under a gateway key)",
      constraints: { ...SSE, setAt: "request" },
      sources: [design("the gateway implements SSE-S3 with the client-side formats, plus bucket default encryption")],
      verifiedBy: UNVERIFIED
    }),
    SseKms: native({
      label: "SSE-KMS",
      feature: "SSE-KMS implemented by the gateway (data key from its Kms)",
      constraints: { ...SSE, setAt: "request", serverSetup: "a Kms configured on the gateway (objcrypt local KMS or AWS KMS)", keyId: "a key id of the gateway's Kms" },
      sources: [design("the gateway implements SSE-KMS with the client-side formats")],
      verifiedBy: UNVERIFIED
    }),
    SseC: native({
      label: "SSE-C",
      feature: "SSE-C implemented by the gateway (the key is never stored)",
      constraints: { ...SSE, setAt: "request", requiresTls: true },
      notes: "Planned to refuse customer keys over plain http like Amazon S3 (loopback tests excepted); not verified yet.",
      sources: [design("the gateway implements SSE-C with the client-side formats")],
      verifiedBy: UNVERIFIED
    }),
    CseC: client({ notes: CSE_NOTE, sources: [design("client-side formats work on any ObjectStore")] }),
    CseKms: client({ notes: CSE_NOTE, sources: [design("client-side formats work on any ObjectStore")] })
  }
}

/**
 * The rows of the built-in matrix, in table order.
 *
 * @since 0.1.0
 * @internal
 */
export const profiles: ReadonlyArray<Profile> = [
  awsS3,
  s3Compatible,
  minio,
  cephRgw,
  ibmCos,
  abci,
  backblazeB2,
  wasabi,
  cloudflareR2,
  gcs,
  azureBlob,
  localFs,
  objcryptGateway
]
