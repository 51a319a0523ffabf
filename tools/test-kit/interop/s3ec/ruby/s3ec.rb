# s3ec.rb: puts and gets objects with Ruby's Aws::S3::EncryptionV2::Client (Debian's
# ruby-aws-sdk-s3 and ruby-aws-sdk-kms) against a local S3/KMS endpoint, for objcrypt's
# cross-checks. The put-v1 modes write with the legacy Aws::S3::Encryption::Client (V1:
# AES-CBC content; RSA PKCS#1 v1.5, AES/ECB or "kms" wraps) from the same gem.
#
# Usage: ruby s3ec.rb put|put-instruction|put-v1|put-v1-instruction|get <bucket> <key> kms|aes|rsa <key-arg> <file>
#   key-arg: the KMS key id (kms), the AES-256 key in hex (aes), a PEM file (rsa: private key)
# Environment: S3EC_ENDPOINT (http://127.0.0.1:PORT), AWS_REGION.
require 'aws-sdk-s3'
require 'aws-sdk-kms'
require 'openssl'

mode, bucket, key, wrap, key_arg, file = ARGV
abort 'usage: ruby s3ec.rb put|put-instruction|put-v1|put-v1-instruction|get <bucket> <key> kms|aes|rsa <key-arg> <file>' if file.nil?

region = ENV.fetch('AWS_REGION', 'us-east-1')
creds = Aws::Credentials.new('testing', 'testing')
endpoint = ENV.fetch('S3EC_ENDPOINT')
s3 = Aws::S3::Client.new(endpoint: endpoint, region: region, credentials: creds, force_path_style: true)

if mode.start_with?('put-v1')
  v1 = { client: s3, envelope_location: mode == 'put-v1-instruction' ? :instruction_file : :metadata }
  case wrap
  when 'kms'
    v1[:kms_key_id] = key_arg
    v1[:kms_client] = Aws::KMS::Client.new(endpoint: endpoint, region: region, credentials: creds)
  when 'aes'
    v1[:encryption_key] = [key_arg].pack('H*')
  when 'rsa'
    v1[:encryption_key] = OpenSSL::PKey::RSA.new(File.read(key_arg)).public_key
  else
    abort "unknown wrap #{wrap}"
  end
  Aws::S3::Encryption::Client.new(**v1).put_object(bucket: bucket, key: key, body: File.binread(file))
  exit 0
end

options = {
  client: s3,
  content_encryption_schema: :aes_gcm_no_padding,
  security_profile: :v2,
  envelope_location: mode == 'put-instruction' ? :instruction_file : :metadata
}
case wrap
when 'kms'
  # Debian's ruby-aws-sdk-kms (1.24) predates the KeyId parameter of Decrypt that
  # aws-sdk-s3 1.117 sends when a key id is configured; reads therefore use the client's
  # documented "any CMK" mode, which lets KMS pick the key from the ciphertext blob.
  options[:kms_key_id] = mode == 'get' ? :kms_allow_decrypt_with_any_cmk : key_arg
  options[:kms_client] = Aws::KMS::Client.new(endpoint: endpoint, region: region, credentials: creds)
  options[:key_wrap_schema] = :kms_context
when 'aes'
  options[:encryption_key] = [key_arg].pack('H*')
  options[:key_wrap_schema] = :aes_gcm
when 'rsa'
  options[:encryption_key] = OpenSSL::PKey::RSA.new(File.read(key_arg))
  options[:key_wrap_schema] = :rsa_oaep_sha1
else
  abort "unknown wrap #{wrap}"
end
client = Aws::S3::EncryptionV2::Client.new(**options)

case mode
when 'put', 'put-instruction'
  client.put_object(bucket: bucket, key: key, body: File.binread(file))
when 'get'
  resp = client.get_object(bucket: bucket, key: key)
  File.binwrite(file, resp.body.read)
else
  abort "unknown mode #{mode}"
end
