import { createPrivateKey, X509Certificate } from 'node:crypto';
import { selfSignedCertificate } from '../kit/x509.ts';
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

const VALID_YEARS = 10;

export const PLACEHOLDER_COMMON_NAME = 'Berth placeholder certificate';

/**
 * A self-signed certificate and key that no client trusts. nginx serves it for hosts
 * whose TLS Secret is missing or unusable, so that one application's broken Secret
 * neither holds back the other routes of its load balancer nor makes the whole config
 * fail `nginx -t`; ingress-nginx does the same with its "fake certificate".
 */
export function createPlaceholderCertificate(now = new Date()): TlsMaterial {
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALID_YEARS);
  return selfSignedCertificate({ commonName: PLACEHOLDER_COMMON_NAME, notBefore, notAfter });
}
