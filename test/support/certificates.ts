/** What Cloudflare's mTLS tells the Worker of a client certificate (request.cf.tlsClientAuth), for tests. */
import type { PresentedCertificate } from "../../broker/auth/client-cert.ts";

/** The certificate's end, as certNotAfter says it below, in epoch ms. */
export const CERT_NOT_AFTER = Date.UTC(2099, 11, 22, 19, 39, 0);

/** A certificate that verified (Cloudflare's field names and formats), with `over` changed. */
export function presentedCertificate(
  over: Partial<Record<keyof PresentedCertificate, string>> = {},
): PresentedCertificate {
  return {
    certPresented: "1",
    certVerified: "SUCCESS",
    certRevoked: "0",
    certSubjectDNRFC2253: "CN=device-17,OU=Sensors,O=Acme,C=US",
    certIssuerDNRFC2253: "CN=Acme Device CA,O=Acme,C=US",
    certFingerprintSHA256: "AF363DC85BC942A892D3CEE9796190FDB36D89CD588A4F1CB17C74A943439714",
    certNotAfter: "Dec 22 19:39:00 2099 GMT",
    ...over,
  };
}
