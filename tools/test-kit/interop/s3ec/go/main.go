// s3ec-go: puts and gets objects with the AWS SDK for Go v1 S3 Encryption Client (s3crypto V2,
// kms+context wrapping, AES/GCM content) against a local S3/KMS endpoint, for objcrypt's
// cross-checks. Built offline against Debian's golang-github-aws-aws-sdk-go-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o s3ec-go .
//
// Usage: s3ec-go put|put-instruction|get <bucket> <key> <kms-key-id> <file>
// Environment: S3EC_ENDPOINT (http://127.0.0.1:PORT), AWS_REGION.
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/kms"
	"github.com/aws/aws-sdk-go/service/s3"
	"github.com/aws/aws-sdk-go/service/s3/s3crypto"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "s3ec-go:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 {
		fail(fmt.Errorf("usage: s3ec-go put|put-instruction|get <bucket> <key> <kms-key-id> <file>"))
	}
	mode, bucket, key, cmk, file := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	sess, err := session.NewSession(&aws.Config{
		Endpoint:         aws.String(os.Getenv("S3EC_ENDPOINT")),
		Region:           aws.String(region),
		S3ForcePathStyle: aws.Bool(true),
		DisableSSL:       aws.Bool(true),
		Credentials:      credentials.NewStaticCredentials("testing", "testing", ""),
	})
	if err != nil {
		fail(err)
	}
	kmsClient := kms.New(sess)
	switch mode {
	case "put", "put-instruction":
		body, err := os.ReadFile(file)
		if err != nil {
			fail(err)
		}
		builder := s3crypto.AESGCMContentCipherBuilderV2(s3crypto.NewKMSContextKeyGenerator(kmsClient, cmk, s3crypto.MaterialDescription{}))
		client, err := s3crypto.NewEncryptionClientV2(sess, builder, func(o *s3crypto.EncryptionClientOptions) {
			if mode == "put-instruction" {
				o.SaveStrategy = s3crypto.S3SaveStrategy{Client: s3.New(sess)}
			}
		})
		if err != nil {
			fail(err)
		}
		if _, err := client.PutObject(&s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			fail(err)
		}
	case "get":
		registry := s3crypto.NewCryptoRegistry()
		if err := s3crypto.RegisterKMSContextWrapWithCMK(registry, kmsClient, cmk); err != nil {
			fail(err)
		}
		if err := s3crypto.RegisterAESGCMContentCipher(registry); err != nil {
			fail(err)
		}
		client, err := s3crypto.NewDecryptionClientV2(sess, registry)
		if err != nil {
			fail(err)
		}
		out, err := client.GetObject(&s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			fail(err)
		}
		data, err := io.ReadAll(out.Body)
		if err != nil {
			fail(err)
		}
		if err := os.WriteFile(file, data, 0o600); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown mode %q", mode))
	}
}
