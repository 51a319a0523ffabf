"""Writes or reads a blob with the official Azure Storage Python SDK's client-side encryption.

usage: /usr/bin/python3 azure_cse.py write|read <request.json>
request: {"connectionString", "container", "blob", "file", "version",
          "kek": {"kind": "A256KW", "keyId", "key": <base64>} | {"kind": "RSA-OAEP" | "RSA-OAEP-256", "keyId", "privatePem"}}
write uploads the bytes of `file`; read downloads into `file`.
"""
import base64
import json
import sys

from azure.storage.blob import BlobClient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap


class AesKek:
    def __init__(self, kid, key):
        self.kid = kid
        self.key = key

    def wrap_key(self, key):
        return aes_key_wrap(self.key, key)

    def unwrap_key(self, key, algorithm):
        if algorithm != "A256KW":
            raise ValueError("unknown algorithm " + algorithm)
        return aes_key_unwrap(self.key, key)

    def get_key_wrap_algorithm(self):
        return "A256KW"

    def get_kid(self):
        return self.kid


OAEP = {
    "RSA-OAEP": padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    "RSA-OAEP-256": padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
}


class RsaKek:
    def __init__(self, kid, private_key, algorithm):
        self.kid = kid
        self.private_key = private_key
        self.algorithm = algorithm

    def wrap_key(self, key):
        return self.private_key.public_key().encrypt(key, OAEP[self.algorithm])

    def unwrap_key(self, key, algorithm):
        if algorithm != self.algorithm:
            raise ValueError("unknown algorithm " + algorithm)
        return self.private_key.decrypt(key, OAEP[self.algorithm])

    def get_key_wrap_algorithm(self):
        return self.algorithm

    def get_kid(self):
        return self.kid


def main():
    action, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        req = json.load(f)
    k = req["kek"]
    if k["kind"] == "A256KW":
        kek = AesKek(k["keyId"], base64.b64decode(k["key"]))
    else:
        kek = RsaKek(k["keyId"], serialization.load_pem_private_key(k["privatePem"].encode(), password=None), k["kind"])
    blob = BlobClient.from_connection_string(req["connectionString"], req["container"], req["blob"])
    blob.require_encryption = True
    blob.key_encryption_key = kek
    blob.encryption_version = req.get("version", "2.0")
    if action == "write":
        with open(req["file"], "rb") as f:
            blob.upload_blob(f.read(), overwrite=True, metadata=req.get("metadata"))
    elif action == "read":
        data = blob.download_blob().readall()
        with open(req["file"], "wb") as f:
            f.write(data)
    else:
        raise SystemExit("unknown action " + action)


if __name__ == "__main__":
    main()
