// An EST (RFC 7030) client driven by the integration tests: BouncyCastle's EST client
// (org.bouncycastle.est, Debian's libbcpkix-java), not our code, talks to our server.
//
// java -cp bcprov.jar:bcpkix.jar:bcutil.jar EstClient.java <command> <authority> <trust.pem> <label> ...
//   cacerts  -> writes the CA certificates as PEM to <out>
//   csrattrs -> prints one line per attribute or OID the server suggests
//   enroll   <user> <password> <request.der> <out>: Basic authentication with an RA secret
//   reenroll <key.pem> <cert.pem> <request.der> <out>: authenticated by the TLS client
//            certificate being renewed
// Prints `issued`, or `pending <seconds>` when the RA has not decided; exits 1 on a refusal
// (the server's status and message printed).

import java.io.FileReader;
import java.io.FileWriter;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Security;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.est.CACertsResponse;
import org.bouncycastle.est.CSRAttributesResponse;
import org.bouncycastle.est.CSRRequestResponse;
import org.bouncycastle.est.ESTException;
import org.bouncycastle.est.ESTService;
import org.bouncycastle.est.EnrollmentResponse;
import org.bouncycastle.est.jcajce.JcaHttpAuthBuilder;
import org.bouncycastle.est.jcajce.JsseESTServiceBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaMiscPEMGenerator;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;
import org.bouncycastle.util.Store;

public class EstClient {
    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        String command = args[0];
        String authority = args[1];
        X509Certificate anchor = readCert(args[2]);
        String label = args[3];

        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        trust.setCertificateEntry("anchor", anchor);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        X509TrustManager tm = (X509TrustManager) tmf.getTrustManagers()[0];

        JsseESTServiceBuilder builder = new JsseESTServiceBuilder(authority, tm);
        builder.withTLSVersion("TLSv1.3");
        if (!label.equals("-")) {
            builder.withLabel(label);
        }
        if (command.equals("reenroll")) {
            PrivateKey key = readKey(args[4]);
            X509Certificate cert = readCert(args[5]);
            KeyStore ks = KeyStore.getInstance("PKCS12");
            ks.load(null, null);
            ks.setKeyEntry("client", key, "x".toCharArray(), new Certificate[] {cert});
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(ks, "x".toCharArray());
            builder.withKeyManagers(kmf.getKeyManagers());
        }
        ESTService est = builder.build();
        try {
            switch (command) {
                case "cacerts": {
                    CACertsResponse r = est.getCACerts();
                    writeCerts(r.getCertificateStore(), args[4]);
                    System.out.println("cacerts " + r.getCertificateStore().getMatches(null).size());
                    break;
                }
                case "csrattrs": {
                    CSRRequestResponse rr = est.getCSRAttributes();
                    CSRAttributesResponse r = rr.getAttributesResponse();
                    for (Object oid : r.getRequirements()) {
                        System.out.println(oid);
                    }
                    break;
                }
                case "enroll": {
                    PKCS10CertificationRequest csr = new PKCS10CertificationRequest(Files.readAllBytes(Paths.get(args[6])));
                    EnrollmentResponse r = est.simpleEnroll(false, csr,
                            new JcaHttpAuthBuilder(args[4], args[5].toCharArray()).build());
                    report(r, csr, args[7]);
                    break;
                }
                case "reenroll": {
                    PKCS10CertificationRequest csr = new PKCS10CertificationRequest(Files.readAllBytes(Paths.get(args[6])));
                    EnrollmentResponse r = est.simpleEnroll(true, csr, null);
                    report(r, csr, args[7]);
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown command " + command);
            }
        } catch (ESTException e) {
            System.out.println("refused " + e.getStatusCode() + " " + e.getMessage());
            System.exit(1);
        }
    }

    // Writes the issued certificate (the one naming the request's subject; the answer may carry
    // its chain too, in no promised order).
    static void report(EnrollmentResponse r, PKCS10CertificationRequest csr, String out) throws Exception {
        if (r.isCompleted()) {
            int issued = 0;
            try (JcaPEMWriter w = new JcaPEMWriter(new FileWriter(out))) {
                for (X509CertificateHolder holder : r.getStore().getMatches(null)) {
                    if (holder.getSubject().equals(csr.getSubject())) {
                        w.writeObject(new JcaMiscPEMGenerator(holder));
                        issued++;
                    }
                }
            }
            if (issued != 1) {
                throw new IllegalStateException("the answer holds " + issued + " certificates for the request's subject");
            }
            System.out.println("issued " + r.getStore().getMatches(null).size());
        } else {
            long wait = (r.getNotBefore() - System.currentTimeMillis() + 999) / 1000;
            System.out.println("pending " + Math.max(wait, 0));
        }
    }

    static void writeCerts(Store<X509CertificateHolder> store, String out) throws Exception {
        try (JcaPEMWriter w = new JcaPEMWriter(new FileWriter(out))) {
            for (X509CertificateHolder holder : store.getMatches(null)) {
                w.writeObject(new JcaMiscPEMGenerator(holder));
            }
        }
    }

    static X509Certificate readCert(String path) throws Exception {
        try (PEMParser p = new PEMParser(new FileReader(path))) {
            X509CertificateHolder holder = (X509CertificateHolder) p.readObject();
            return new JcaX509CertificateConverter().getCertificate(holder);
        }
    }

    static PrivateKey readKey(String path) throws Exception {
        try (PEMParser p = new PEMParser(new FileReader(path))) {
            Object o = p.readObject();
            PrivateKeyInfo info = o instanceof PrivateKeyInfo ? (PrivateKeyInfo) o
                    : ((org.bouncycastle.openssl.PEMKeyPair) o).getPrivateKeyInfo();
            return new JcaPEMKeyConverter().getPrivateKey(info);
        }
    }
}
