/**
 * Client certificates as principals (README, Browser logins and client
 * certificates). With mTLS on the Worker's hostname, Cloudflare's edge checks the
 * certificate a client presents during the TLS handshake against the zone's CA and
 * tells the Worker what it found in `request.cf.tlsClientAuth`: the subject and
 * issuer, the fingerprint, and whether it verified. The Worker never sees the
 * handshake, so what it trusts is that verdict: a certificate names a principal
 * (`cert:<name>`) only when `certPresented` is "1", `certVerified` is "SUCCESS"
 * and `certRevoked` is not "1" (Cloudflare reports a revoked certificate as
 * verified), and, when CLIENT_CERT_ISSUER is set, its issuer is that one.
 *
 * The name is the subject's common name (CN) or the SHA-256 fingerprint,
 * CLIENT_CERT_PRINCIPAL says which. A CN names whoever the CA issued it to, so a
 * CA that issues certificates for several purposes should be narrowed with
 * CLIENT_CERT_ISSUER or use fingerprints; a fingerprint names one certificate
 * exactly, and changes when it is renewed.
 */
import { userNameProblem } from "./user-names.ts";

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** What names a certificate's principal. */
export type CertPrincipal = "cn" | "fingerprint";

/**
 * The fields of `request.cf.tlsClientAuth` read here (Cloudflare's docs, "Client
 * certificate variables"; all strings). Loosely typed: they come from outside.
 */
export interface PresentedCertificate {
  certPresented?: unknown;
  certVerified?: unknown;
  certRevoked?: unknown;
  certSubjectDNRFC2253?: unknown;
  certIssuerDNRFC2253?: unknown;
  certFingerprintSHA256?: unknown;
  certNotAfter?: unknown;
}

export interface ClientCertSettings {
  principal: CertPrincipal;
  /** The issuer's DN (RFC 2253, as certIssuerDNRFC2253 shows it) certificates must have; any when unset. */
  issuer?: string;
}

export type CertResult =
  /** No certificate was presented. */
  { ok: "none" } | { ok: true; name: string; expiresAt?: number } | { ok: false; reason: string };

/** The longest DN read: a CN is at most 64 characters (X.520), a whole DN a few hundred. */
const MAX_DN_BYTES = 1024;

export function certificateLogin(
  tls: PresentedCertificate | undefined,
  settings: ClientCertSettings,
  now = Date.now(),
): CertResult {
  if (tls === undefined || tls.certPresented !== "1") return { ok: "none" };
  if (tls.certVerified !== "SUCCESS")
    return {
      ok: false,
      reason: `client certificate not verified (${String(tls.certVerified).slice(0, 80)})`,
    };
  if (tls.certRevoked === "1") return { ok: false, reason: "client certificate revoked" };
  if (settings.issuer !== undefined && tls.certIssuerDNRFC2253 !== settings.issuer)
    return { ok: false, reason: "client certificate from another issuer (CLIENT_CERT_ISSUER)" };
  const end = notAfter(tls.certNotAfter);
  // Cloudflare checked the dates at the handshake; this only keeps the verdict honest.
  if (end !== undefined && now >= end) return { ok: false, reason: "client certificate expired" };
  const name =
    settings.principal === "fingerprint" ? fingerprint(tls.certFingerprintSHA256) : commonName(tls);
  if (typeof name !== "string") return { ok: false, reason: name.problem };
  const problem = userNameProblem(name);
  if (problem !== null) return { ok: false, reason: `client certificate: ${problem}` };
  return end === undefined ? { ok: true, name } : { ok: true, name, expiresAt: end };
}

function fingerprint(value: unknown): string | { problem: string } {
  if (typeof value !== "string" || !/^[0-9a-fA-F]{64}$/.test(value))
    return { problem: "client certificate has no SHA-256 fingerprint" };
  return value.toLowerCase();
}

function commonName(tls: PresentedCertificate): string | { problem: string } {
  const dn = tls.certSubjectDNRFC2253;
  if (typeof dn !== "string" || dn === "") return { problem: "client certificate has no subject" };
  if (dn.length > MAX_DN_BYTES)
    return { problem: `client certificate subject longer than ${MAX_DN_BYTES} bytes` };
  const attributes = parseDn(dn);
  if (attributes === undefined) return { problem: "client certificate subject is not an RFC 2253 DN" };
  const cns = attributes.filter(([type]) => type === "CN" || type === "2.5.4.3");
  // Two CNs would leave the choice of principal to the order a tool prints them in.
  if (cns.length !== 1) return { problem: `client certificate subject has ${cns.length} CNs, not one` };
  return (cns[0] as [string, string])[1];
}

/**
 * The attributes of an RFC 2253 distinguished name, in order, as [TYPE, value]
 * with the value unescaped; undefined when it is not one this reads. RDNs are
 * separated by "," (or ";", 2253 section 4), multi-valued RDNs by "+"; "\" escapes
 * a special character or gives a byte in two hex digits (values are UTF-8). A
 * value in hex (`#04...`, a BER encoding) or in quotes is not read: no CN of a
 * certificate a CA issues for a device needs either.
 */
export function parseDn(dn: string): Array<[string, string]> | undefined {
  const out: Array<[string, string]> = [];
  let i = 0;
  while (i < dn.length) {
    const eq = dn.indexOf("=", i);
    if (eq < 0) return undefined;
    const type = dn.slice(i, eq).trim().toUpperCase();
    if (!/^(?:[A-Z][A-Z0-9-]*|\d+(?:\.\d+)*)$/.test(type)) return undefined;
    i = eq + 1;
    while (dn[i] === " ") i++;
    if (dn[i] === "#" || dn[i] === '"') return undefined;
    const bytes: number[] = [];
    // Unescaped spaces at the end of a value are not part of it (2253 section 4).
    let trailing = 0;
    for (; i < dn.length; i++) {
      const c = dn.codePointAt(i) as number;
      const ch = String.fromCodePoint(c);
      if (ch === "," || ch === ";" || ch === "+") break;
      if (ch !== "\\") {
        bytes.push(...utf8.encode(ch));
        trailing = ch === " " ? trailing + 1 : 0;
        i += ch.length - 1;
        continue;
      }
      trailing = 0;
      const hex = dn.slice(i + 1, i + 3);
      const next = dn[i + 1];
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(Number.parseInt(hex, 16));
        i += 2;
      } else if (next !== undefined && ',=+<>#;\\" '.includes(next)) {
        bytes.push(next.charCodeAt(0));
        i += 1;
      } else {
        return undefined;
      }
    }
    let value: string;
    try {
      value = strictUtf8.decode(new Uint8Array(bytes.slice(0, bytes.length - trailing)));
    } catch {
      return undefined;
    }
    out.push([type, value]);
    if (i < dn.length) i++; // past the separator
  }
  return out;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `certNotAfter` as Cloudflare gives it ("Dec 22 19:39:00 2018 GMT") in epoch ms; undefined if not that. */
export function notAfter(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/.exec(value);
  if (m === null) return undefined;
  const [, mon = "", day = "", h = "", min = "", s = "", year = ""] = m;
  const month = MONTHS.indexOf(mon);
  if (month < 0) return undefined;
  const at = Date.UTC(Number(year), month, Number(day), Number(h), Number(min), Number(s));
  return Number.isFinite(at) ? at : undefined;
}
