import { createPrivateKey, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createPlaceholderCertificate, PLACEHOLDER_COMMON_NAME, tlsMaterialProblem } from '../../src/agent/certificates.ts';

describe('createPlaceholderCertificate', () => {
  it('writes a self-signed certificate that verifies with its own key', () => {
    const now = new Date('2026-11-23T10:00:00Z');
    const material = createPlaceholderCertificate(now);
    const certificate = new X509Certificate(material.certificate);
    expect(certificate.subject).toBe(`CN=${PLACEHOLDER_COMMON_NAME}`);
    expect(certificate.issuer).toBe(certificate.subject);
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    expect(certificate.checkPrivateKey(createPrivateKey(material.key))).toBe(true);
    expect(new Date(certificate.validFrom).getTime()).toBeLessThan(now.getTime());
    expect(new Date(certificate.validTo).toISOString()).toBe('2036-11-23T10:00:00.000Z');
    expect(tlsMaterialProblem(material)).toBeUndefined();
  });

  it('writes GeneralizedTime for dates from 2050 on', () => {
    const certificate = new X509Certificate(createPlaceholderCertificate(new Date('2045-06-01T00:00:00Z')).certificate);
    expect(new Date(certificate.validTo).toISOString()).toBe('2055-06-01T00:00:00.000Z');
  });

  it('gives every certificate its own key and serial', () => {
    const [a, b] = [createPlaceholderCertificate(), createPlaceholderCertificate()];
    expect(new X509Certificate(a.certificate).serialNumber).not.toBe(new X509Certificate(b.certificate).serialNumber);
    expect(a.key).not.toBe(b.key);
  });
});

describe('tlsMaterialProblem', () => {
  const good = createPlaceholderCertificate();
  const other = createPlaceholderCertificate();

  it.each([
    ['a certificate that is not PEM', { certificate: 'not a certificate', key: good.key }, 'tls.crt is not a PEM certificate'],
    ['a key that is not PEM', { certificate: good.certificate, key: 'not a key' }, 'tls.key is not an unencrypted PEM private key'],
    ['the key of another certificate', { certificate: good.certificate, key: other.key }, 'tls.key is not the key of the certificate in tls.crt'],
  ])('names %s', (_, material, problem) => {
    expect(tlsMaterialProblem(material)).toBe(problem);
  });
});
