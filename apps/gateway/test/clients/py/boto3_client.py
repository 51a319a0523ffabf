"""boto3 (Debian python3-boto3) against the gateway: every call the test checks, one process.

Prints one JSON document of observations on stdout; the TypeScript test asserts on it.
"""
import base64
import hashlib
import json
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, ca, big_path, small_path, work = sys.argv[1:6]
key = base64.b64decode(os.environ["GW_CUSTOMER_KEY"])
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=os.environ["GW_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["GW_SECRET_ACCESS_KEY"],
    verify=ca,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
big = open(big_path, "rb").read()
small = open(small_path, "rb").read()
ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
out = {}

s3.create_bucket(Bucket="boto")
r = s3.put_object(Bucket="boto", Key="plain", Body=small)
out["put_default_sse"] = r.get("ServerSideEncryption")
r = s3.put_object(Bucket="boto", Key="aes", Body=small, ServerSideEncryption="AES256")
out["put_aes_sse"] = r.get("ServerSideEncryption")
r = s3.put_object(Bucket="boto", Key="kms", Body=small, ServerSideEncryption="aws:kms")
out["put_kms_sse"] = r.get("ServerSideEncryption")
r = s3.put_object(Bucket="boto", Key="kms-ctx", Body=small, ServerSideEncryption="aws:kms", SSEKMSEncryptionContext=base64.b64encode(b'{"app":"boto"}').decode())
out["put_kms_ctx"] = r.get("ServerSideEncryption")
r = s3.put_object(Bucket="boto", Key="ssec", Body=small, **ssec)
out["put_ssec_md5"] = r.get("SSECustomerKeyMD5") == base64.b64encode(hashlib.md5(key).digest()).decode()

out["get_equal"] = all(
    s3.get_object(Bucket="boto", Key=k)["Body"].read() == small for k in ["plain", "aes", "kms", "kms-ctx"]
)
out["get_ssec_equal"] = s3.get_object(Bucket="boto", Key="ssec", **ssec)["Body"].read() == small
try:
    s3.get_object(Bucket="boto", Key="ssec")
    out["get_ssec_without_key"] = "ok"
except s3.exceptions.ClientError as e:
    out["get_ssec_without_key"] = e.response["ResponseMetadata"]["HTTPStatusCode"]
r = s3.get_object(Bucket="boto", Key="aes", Range="bytes=1000-1999")
out["range_equal"] = r["Body"].read() == small[1000:2000]
out["range_header"] = r["ContentRange"]
r = s3.get_object(Bucket="boto", Key="ssec", Range="bytes=-7", **ssec)
out["range_ssec_equal"] = r["Body"].read() == small[-7:]
out["head_kms"] = s3.head_object(Bucket="boto", Key="kms")["ServerSideEncryption"]

cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=2)
for name, extra in [("mp-default", {}), ("mp-aes", {"ServerSideEncryption": "AES256"}), ("mp-kms", {"ServerSideEncryption": "aws:kms"}), ("mp-ssec", ssec)]:
    s3.upload_file(big_path, "boto", name, ExtraArgs=extra, Config=cfg)
    dest = os.path.join(work, name)
    s3.download_file("boto", name, dest, ExtraArgs=({k: v for k, v in extra.items() if k.startswith("SSECustomer")}), Config=cfg)
    out["mp_equal_" + name] = open(dest, "rb").read() == big
out["mp_head_kms"] = s3.head_object(Bucket="boto", Key="mp-kms")["ServerSideEncryption"]

s3.copy_object(Bucket="boto", Key="copy-plain", CopySource={"Bucket": "boto", "Key": "aes"})
s3.copy_object(
    Bucket="boto", Key="copy-from-ssec", CopySource={"Bucket": "boto", "Key": "ssec"},
    CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key, ServerSideEncryption="aws:kms",
)
s3.copy_object(Bucket="boto", Key="copy-to-ssec", CopySource={"Bucket": "boto", "Key": "kms"}, **ssec)
out["copy_equal"] = (
    s3.get_object(Bucket="boto", Key="copy-plain")["Body"].read() == small
    and s3.get_object(Bucket="boto", Key="copy-from-ssec")["Body"].read() == small
    and s3.get_object(Bucket="boto", Key="copy-to-ssec", **ssec)["Body"].read() == small
)
out["copy_from_ssec_sse"] = s3.head_object(Bucket="boto", Key="copy-from-ssec")["ServerSideEncryption"]

keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="boto", PaginationConfig={"PageSize": 4}):
    keys += [c["Key"] for c in page.get("Contents", [])]
out["list_v2"] = keys
out["list_v1"] = [c["Key"] for c in s3.list_objects(Bucket="boto", Prefix="mp-")["Contents"]]
s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": "copy-plain"}, {"Key": "copy-to-ssec"}]})
out["after_delete"] = len(s3.list_objects_v2(Bucket="boto")["Contents"])
# Tagging, ACLs and versioning, in a bucket of their own (the counts above stay as they are).
s3.create_bucket(Bucket="boto-sub")
s3.put_object(Bucket="boto-sub", Key="t", Body=small, Tagging="a=1&b=two%20words", **ssec)
out["tags_put"] = s3.get_object_tagging(Bucket="boto-sub", Key="t")["TagSet"]
s3.put_object_tagging(Bucket="boto-sub", Key="t", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
r = s3.get_object(Bucket="boto-sub", Key="t", **ssec)
out["tags_count"] = r.get("TagCount")
out["tags_body_equal"] = r["Body"].read() == small
s3.delete_object_tagging(Bucket="boto-sub", Key="t")
out["tags_after_delete"] = s3.get_object_tagging(Bucket="boto-sub", Key="t")["TagSet"]
s3.put_bucket_tagging(Bucket="boto-sub", Tagging={"TagSet": [{"Key": "env", "Value": "test"}]})
out["bucket_tags"] = s3.get_bucket_tagging(Bucket="boto-sub")["TagSet"]
out["bucket_acl"] = [[g["Grantee"]["ID"], g["Permission"]] for g in s3.get_bucket_acl(Bucket="boto-sub")["Grants"]]
s3.put_object_acl(Bucket="boto-sub", Key="t", ACL="private")
out["object_acl_owner"] = s3.get_object_acl(Bucket="boto-sub", Key="t")["Owner"]["ID"]
try:
    s3.put_bucket_acl(Bucket="boto-sub", ACL="public-read")
    out["public_acl"] = "ok"
except s3.exceptions.ClientError as e:
    out["public_acl"] = e.response["Error"]["Code"]
out["versioning"] = s3.get_bucket_versioning(Bucket="boto-sub").get("Status")
s3.put_bucket_versioning(Bucket="boto-sub", VersioningConfiguration={"Status": "Suspended"})
out["null_version_equal"] = s3.get_object(Bucket="boto-sub", Key="t", VersionId="null", **ssec)["Body"].read() == small
print(json.dumps(out))
