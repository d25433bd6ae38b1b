import { createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import type { TlsMaterial } from './desired.ts';

/** Why a TLS Secret's certificate and key would not load in nginx, or undefined when they would. */
export function tlsMaterialProblem(material: TlsMaterial): string | undefined {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(material.certificate);
  } catch {
    return 'tls.crt is not a PEM certificate';
  }
  let key;
  try {
    key = createPrivateKey(material.key);
  } catch {
    return 'tls.key is not an unencrypted PEM private key';
  }
  if (!certificate.checkPrivateKey(key)) return 'tls.key is not the key of the certificate in tls.crt';
  return undefined;
}

// Just enough DER to write one self-signed certificate (RFC 5280), so that the agent
// needs no openssl binary.
function der(tag: number, content: Buffer): Buffer {
  const length = content.length;
  if (length < 0x80) return Buffer.concat([Buffer.from([tag, length]), content]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest >>= 8) bytes.unshift(rest & 0xff);
  return Buffer.concat([Buffer.from([tag, 0x80 | bytes.length, ...bytes]), content]);
}

const sequence = (...parts: Buffer[]) => der(0x30, Buffer.concat(parts));

function objectIdentifier(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split('.').map(Number);
  const bytes = [first! * 40 + second!];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let value = arc >> 7; value > 0; value >>= 7) base128.unshift((value & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return der(0x06, Buffer.from(bytes));
}

/** UTCTime until 2049, GeneralizedTime from 2050, as RFC 5280 asks. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return date.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(iso.slice(2))) : der(0x18, Buffer.from(iso));
}

function commonName(name: string): Buffer {
  return sequence(der(0x31, sequence(objectIdentifier('2.5.4.3'), der(0x0c, Buffer.from(name)))));
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const VALID_YEARS = 10;

export const PLACEHOLDER_COMMON_NAME = 'Berth placeholder certificate';

/**
 * A self-signed certificate and key that no client trusts. nginx serves it for hosts
 * whose TLS Secret is missing or unusable, so that one application's broken Secret
 * neither holds back the other routes of its load balancer nor makes the whole config
 * fail `nginx -t`; ingress-nginx does the same with its "fake certificate".
 */
export function createPlaceholderCertificate(now = new Date()): TlsMaterial {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40; // positive, and minimal in DER
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALID_YEARS);
  const algorithm = sequence(objectIdentifier(ECDSA_WITH_SHA256));
  const toBeSigned = sequence(
    der(0x02, serial),
    algorithm,
    commonName(PLACEHOLDER_COMMON_NAME),
    sequence(time(notBefore), time(notAfter)),
    commonName(PLACEHOLDER_COMMON_NAME),
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = sign('sha256', toBeSigned, privateKey);
  const certificate = sequence(toBeSigned, algorithm, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const pem = certificate.toString('base64').replace(/.{1,64}/g, '$&\n');
  return {
    certificate: `-----BEGIN CERTIFICATE-----\n${pem}-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
