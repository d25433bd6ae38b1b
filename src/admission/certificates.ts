import { X509Certificate } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type { OperatorConfig } from '../config.ts';
import { FIELD_MANAGER, isNotFound } from '../kit/apply.ts';
import { errorMessage, type Logger } from '../kit/log.ts';
import { KubeRest } from '../kit/rest.ts';
import { selfSignedCertificate, type PemPair } from '../kit/x509.ts';

/** The serving certificate and key, and the bundle of certificates the API server is told to trust. */
export interface ServingMaterial extends PemPair {
  caBundle: string;
}

type AdmissionConfig = OperatorConfig['admission'];

interface SecretObject {
  metadata: { resourceVersion?: string };
  data?: Record<string, string>;
}

const decode = (value: string | undefined) => (value ? Buffer.from(value, 'base64').toString('utf8') : '');
const encode = (value: string) => Buffer.from(value).toString('base64');

/** The PEM certificates of a bundle. */
export function splitBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

/** Whether a certificate should be replaced now: missing, or less than a third of its lifetime left. */
export function rotationDue(certificate: string | undefined, validitySeconds: number, now: Date): boolean {
  if (!certificate) return true;
  try {
    const expires = new Date(new X509Certificate(certificate).validTo).getTime();
    return expires - now.getTime() < (validitySeconds * 1000) / 3;
  } catch {
    return true;
  }
}

/**
 * A new serving certificate, and a bundle that trusts it and every older certificate
 * that has not expired yet: replicas still serving the old one keep being trusted until
 * they have reread the Secret.
 */
export function nextMaterial(previous: ServingMaterial | undefined, config: AdmissionConfig, now: Date): ServingMaterial {
  const pair = selfSignedCertificate({
    commonName: 'berth-webhook',
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + config.certificateValiditySeconds * 1000),
    subjectAltNames: config.subjectAltNames,
  });
  const stillValid = splitBundle(previous?.caBundle ?? '').filter((pem) => new Date(new X509Certificate(pem).validTo) > now);
  return { ...pair, caBundle: [pair.certificate, ...stillValid.slice(0, 2)].join('') };
}

/**
 * The webhooks' serving certificate. Every replica rereads the Secret and serves what it
 * holds; the leader (only it, so two replicas never rotate at once) creates the
 * certificate, replaces it once two thirds of its lifetime have passed, and keeps the
 * caBundle of both webhook configurations equal to the Secret's bundle. The bundle is
 * written to the webhook configurations before the Secret, so the API server trusts a
 * new certificate before any replica serves it. With cert-manager (manageCertificate
 * false) the operator only reads the Secret.
 */
export class CertificateKeeper {
  private readonly rest: KubeRest;
  private readonly config: AdmissionConfig;
  private readonly namespace: string;
  private readonly secretPath: string;
  private readonly logger: Logger;
  private readonly onChange: (material: ServingMaterial) => void;
  private current: ServingMaterial | undefined;

  constructor(kc: KubeConfig, config: AdmissionConfig, namespace: string, logger: Logger, onChange: (material: ServingMaterial) => void) {
    this.rest = new KubeRest(kc);
    this.config = config;
    this.namespace = namespace;
    this.secretPath = `/api/v1/namespaces/${namespace}/secrets/${config.secretName}`;
    this.logger = logger;
    this.onChange = onChange;
  }

  private async readSecret(): Promise<{ material?: ServingMaterial; resourceVersion?: string }> {
    try {
      const secret = await this.rest.request<SecretObject>('GET', this.secretPath);
      const certificate = decode(secret.data?.['tls.crt']);
      const key = decode(secret.data?.['tls.key']);
      const caBundle = decode(secret.data?.['ca.crt']) || certificate;
      return { material: certificate && key ? { certificate, key, caBundle } : undefined, resourceVersion: secret.metadata.resourceVersion };
    } catch (error) {
      if (isNotFound(error)) return {};
      throw error;
    }
  }

  private async writeSecret(material: ServingMaterial, resourceVersion: string | undefined): Promise<void> {
    await this.rest.request('PATCH', this.secretPath, {
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: this.config.secretName, namespace: this.namespace, ...(resourceVersion ? { resourceVersion } : {}) },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': encode(material.certificate), 'tls.key': encode(material.key), 'ca.crt': encode(material.caBundle) },
      },
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: FIELD_MANAGER, force: true },
    });
  }

  /** Sets caBundle on every webhook of both configurations that does not have it yet. */
  private async publishBundle(caBundle: string): Promise<void> {
    const encoded = encode(caBundle);
    const { mutating, validating } = this.config.webhookConfigurations;
    for (const [plural, name] of [
      ['mutatingwebhookconfigurations', mutating],
      ['validatingwebhookconfigurations', validating],
    ] as const) {
      const path = `/apis/admissionregistration.k8s.io/v1/${plural}/${name}`;
      let configuration: { webhooks?: { name: string; clientConfig: { caBundle?: string } }[] };
      try {
        configuration = await this.rest.request('GET', path);
      } catch (error) {
        if (isNotFound(error)) continue; // not installed (yet): nothing to keep current
        throw error;
      }
      const webhooks = configuration.webhooks ?? [];
      if (webhooks.every((webhook) => webhook.clientConfig.caBundle === encoded)) continue;
      await this.rest.request('PATCH', path, {
        body: { webhooks: webhooks.map((webhook) => ({ name: webhook.name, clientConfig: { caBundle: encoded } })) },
        contentType: 'application/strategic-merge-patch+json',
      });
      this.logger.info({ configuration: `${plural}/${name}` }, 'webhook caBundle updated');
    }
  }

  private load(material: ServingMaterial): void {
    if (this.current?.certificate === material.certificate && this.current.key === material.key) return;
    this.current = material;
    this.logger.info({ serial: new X509Certificate(material.certificate).serialNumber }, 'serving webhook certificate loaded');
    this.onChange(material);
  }

  /** One pass: reread the Secret and, when leading, rotate and publish. Errors are logged; the next pass retries. */
  async check(leading: boolean, now = new Date()): Promise<void> {
    try {
      let { material, resourceVersion } = await this.readSecret();
      if (leading && this.config.manageCertificate) {
        if (rotationDue(material?.certificate, this.config.certificateValiditySeconds, now)) {
          const next = nextMaterial(material, this.config, now);
          await this.publishBundle(next.caBundle);
          await this.writeSecret(next, resourceVersion);
          this.logger.info({ secret: this.config.secretName }, 'webhook certificate rotated');
          material = next;
        } else if (material) {
          await this.publishBundle(material.caBundle);
        }
      }
      if (material) this.load(material);
    } catch (error) {
      this.logger.warn({ error: errorMessage(error) }, 'webhook certificate check failed; retrying');
    }
  }
}
