import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIPv4 } from 'node:net';

// Just enough DER to write one self-signed certificate (RFC 5280), so that neither the
// agent nor the operator needs an openssl binary or a certificate library.
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

const extension = (oid: string, critical: boolean, value: Buffer) =>
  sequence(objectIdentifier(oid), ...(critical ? [der(0x01, Buffer.from([0xff]))] : []), der(0x04, value));

/** subjectAltName (dNSName, iPAddress) and basicConstraints CA, so that the certificate is its own trust anchor. */
function extensions(subjectAltNames: string[]): Buffer {
  const names = subjectAltNames.map((name) =>
    isIPv4(name) ? der(0x87, Buffer.from(name.split('.').map(Number))) : der(0x82, Buffer.from(name)),
  );
  return der(
    0xa3,
    sequence(extension('2.5.29.19', true, sequence(der(0x01, Buffer.from([0xff])))), extension('2.5.29.17', false, sequence(...names))),
  );
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

export interface PemPair {
  certificate: string;
  key: string;
}

export interface SelfSignedOptions {
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IPv4 addresses the certificate is valid for; with them it is an X.509 v3 CA certificate. */
  subjectAltNames?: string[];
}

/** A self-signed ECDSA P-256 certificate and its key, in PEM. */
export function selfSignedCertificate(options: SelfSignedOptions): PemPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40; // positive, and minimal in DER
  const algorithm = sequence(objectIdentifier(ECDSA_WITH_SHA256));
  const v3 = options.subjectAltNames !== undefined && options.subjectAltNames.length > 0;
  const toBeSigned = sequence(
    ...(v3 ? [der(0xa0, der(0x02, Buffer.from([2])))] : []),
    der(0x02, serial),
    algorithm,
    commonName(options.commonName),
    sequence(time(options.notBefore), time(options.notAfter)),
    commonName(options.commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
    ...(v3 ? [extensions(options.subjectAltNames!)] : []),
  );
  const signature = sign('sha256', toBeSigned, privateKey);
  const certificate = sequence(toBeSigned, algorithm, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const pem = certificate.toString('base64').replace(/.{1,64}/g, '$&\n');
  return {
    certificate: `-----BEGIN CERTIFICATE-----\n${pem}-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
