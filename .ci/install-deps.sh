#!/usr/bin/env bash
# Installs the Debian packages the integration tests need (real protocol peers started on
# 127.0.0.1 by tools/test-kit). Idempotent: packages already installed are left alone, and
# nothing is fetched when everything is present.
#
#   softhsm2                               PKCS#11 token for the keys HSM tests
#   python3-azure-storage python3-cryptography  Azure CSE v2 reference (driver-azure cross-check)
#   golang-go golang-github-aws-aws-sdk-go-dev ruby-aws-sdk-s3 ruby-aws-sdk-kms
#                                          real AWS S3 Encryption Clients (s3ec interop tests)
#   radosgw ceph-mon ceph-osd ceph-common  Ceph RGW one-node cluster (driver-s3: SSE-C/SSE-KMS
#                                          enforcement; `rados` reads the stored ciphertext)
#   awscli s3cmd rclone python3-boto3      real S3 clients against the gateway (AWS CLI v2 at
#                                          /usr/bin/aws also drives the KMS service tests)
#
# moto_server (AWS KMS + S3 emulator) comes from the machine image's Python (moto 5.2);
# Debian has no python3-moto package, so it is checked here but not installed.
set -euo pipefail

PACKAGES=(
  radosgw
  ceph-mon
  ceph-osd
  ceph-common
  softhsm2
  python3-azure-storage
  python3-cryptography
  golang-go
  golang-github-aws-aws-sdk-go-dev
  ruby-aws-sdk-s3
  ruby-aws-sdk-kms
  awscli
  s3cmd
  rclone
  python3-boto3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present (${PACKAGES[*]})"
fi

if ! command -v moto_server >/dev/null 2>&1; then
  echo "install-deps: WARNING moto_server not found on PATH; driver-s3 KMS/SSE-S3 tests need moto 5.x (pip install 'moto[server]')" >&2
fi
