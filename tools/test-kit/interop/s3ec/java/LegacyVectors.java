// LegacyVectors: writes S3 Encryption Client objects in the legacy layouts of AWS's Java V1
// client (AmazonS3EncryptionClient), with the JDK's own providers exactly as that client calls
// them when no crypto provider is configured: key wrapping through Cipher.getInstance(<wrap
// name>) and content through AES/CBC/PKCS5Padding (EncryptionOnly mode) or AES/GCM/NoPadding
// (AuthenticatedEncryption mode). Output: JSON on stdout, the vector file
// packages/core/test/vectors/s3ec/java-v1-legacy.json read by objcrypt's tests.
//
// Usage (JDK 11+, no dependencies): java LegacyVectors.java > java-v1-legacy.json
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

public class LegacyVectors {
    static final SecureRandom RANDOM = new SecureRandom();
    static final Base64.Encoder B64 = Base64.getEncoder();

    static byte[] random(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }

    static String json(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
    }

    static String object(String name, String note, Map<String, String> metadata, byte[] body) {
        StringBuilder m = new StringBuilder("{");
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            if (m.length() > 1) m.append(", ");
            m.append(json(e.getKey())).append(": ").append(json(e.getValue()));
        }
        m.append("}");
        return "    {\"name\": " + json(name) + ", \"note\": " + json(note) + ", \"metadata\": " + m + ", \"body\": " + json(B64.encodeToString(body)) + "}";
    }

    public static void main(String[] args) throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("RSA");
        g.initialize(2048);
        KeyPair rsa = g.generateKeyPair();
        byte[] aesKey = random(32);
        byte[] plaintext = ("Written with the JDK's providers in the layouts of AWS's Java V1 S3 encryption client. ").repeat(40).getBytes(StandardCharsets.UTF_8);
        SecretKeySpec kek = new SecretKeySpec(aesKey, "AES");

        StringBuilder out = new StringBuilder();
        out.append("{\n  \"generator\": \"tools/test-kit/interop/s3ec/java/LegacyVectors.java on ")
           .append(System.getProperty("java.vendor")).append(" ").append(System.getProperty("java.version")).append("\",\n");
        out.append("  \"aesKeyHex\": ").append(json(java.util.HexFormat.of().formatHex(aesKey))).append(",\n");
        out.append("  \"rsaPrivateKeyPkcs8\": ").append(json(B64.encodeToString(rsa.getPrivate().getEncoded()))).append(",\n");
        out.append("  \"plaintext\": ").append(json(B64.encodeToString(plaintext))).append(",\n");
        out.append("  \"objects\": [\n");

        String[] objects = new String[4];
        // EncryptionOnly mode: AES/CBC content, x-amz-key, no wrap algorithm: the data key is
        // encrypted with the master key's own cipher name ("RSA" or "AES").
        for (int i = 0; i < 2; i++) {
            boolean useRsa = i == 0;
            byte[] dataKey = random(32);
            byte[] iv = random(16);
            Cipher content = Cipher.getInstance("AES/CBC/PKCS5Padding");
            content.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(dataKey, "AES"), new IvParameterSpec(iv));
            byte[] body = content.doFinal(plaintext);
            Cipher wrap = Cipher.getInstance(useRsa ? "RSA" : "AES");
            wrap.init(Cipher.ENCRYPT_MODE, useRsa ? rsa.getPublic() : kek, RANDOM);
            byte[] edk = wrap.doFinal(dataKey);
            Map<String, String> m = new LinkedHashMap<>();
            m.put("x-amz-key", B64.encodeToString(edk));
            m.put("x-amz-iv", B64.encodeToString(iv));
            m.put("x-amz-matdesc", "{}");
            m.put("x-amz-unencrypted-content-length", String.valueOf(plaintext.length));
            objects[i] = object(useRsa ? "v1-eo-rsa-pkcs1-cbc" : "v1-eo-aes-ecb-cbc",
                "EncryptionOnly: Cipher.getInstance(\"" + (useRsa ? "RSA" : "AES") + "\") = " + wrap.getAlgorithm() + " from " + wrap.getProvider().getName(), m, body);
        }
        // AuthenticatedEncryption mode: AES/GCM content, V2 names, wrap "AESWrap" or
        // "RSA/ECB/OAEPWithSHA-256AndMGF1Padding" through Cipher.wrap.
        for (int i = 0; i < 2; i++) {
            boolean useRsa = i == 0;
            String wrapName = useRsa ? "RSA/ECB/OAEPWithSHA-256AndMGF1Padding" : "AESWrap";
            byte[] dataKey = random(32);
            byte[] iv = random(12);
            Cipher content = Cipher.getInstance("AES/GCM/NoPadding");
            content.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(dataKey, "AES"), new GCMParameterSpec(128, iv));
            byte[] body = content.doFinal(plaintext);
            Cipher wrap = Cipher.getInstance(wrapName);
            wrap.init(Cipher.WRAP_MODE, useRsa ? rsa.getPublic() : kek, RANDOM);
            byte[] edk = wrap.wrap(new SecretKeySpec(dataKey, "AES"));
            Map<String, String> m = new LinkedHashMap<>();
            m.put("x-amz-key-v2", B64.encodeToString(edk));
            m.put("x-amz-iv", B64.encodeToString(iv));
            m.put("x-amz-matdesc", "{}");
            m.put("x-amz-cek-alg", "AES/GCM/NoPadding");
            m.put("x-amz-tag-len", "128");
            m.put("x-amz-wrap-alg", wrapName);
            m.put("x-amz-unencrypted-content-length", String.valueOf(plaintext.length));
            objects[2 + i] = object(useRsa ? "v1-ae-rsa-oaep-sha256-gcm" : "v1-ae-aeswrap-gcm",
                "AuthenticatedEncryption: Cipher.getInstance(\"" + wrapName + "\") from " + wrap.getProvider().getName(), m, body);
        }
        out.append(String.join(",\n", objects)).append("\n  ]\n}\n");
        System.out.print(out);
    }
}
