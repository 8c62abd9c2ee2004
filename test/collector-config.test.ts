import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IContainer } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * Checks the two OpenTelemetry Collector configs offline: what a collector
 * would reject at start-up (undefined or unknown components), and what it
 * would accept but get wrong (processor order, who may reach the receivers,
 * the health port the kubelet probes, the sampling policies).
 */

const ROOT = path.resolve(__dirname, '..');

type Section = 'receivers' | 'processors' | 'exporters' | 'extensions' | 'connectors';
type Components = Record<string, Record<string, unknown> | null>;

interface CollectorConfig {
  receivers?: Components;
  processors?: Components;
  exporters?: Components;
  extensions?: Components;
  connectors?: Components;
  service: {
    extensions?: string[];
    pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }>;
  };
}

/**
 * Component types we use, each present in the contrib distribution. A type
 * missing here is either a typo or a new dependency on the distribution:
 * check it exists in the pinned version before adding it.
 */
const KNOWN: Record<Section, string[]> = {
  receivers: ['otlp'],
  processors: ['memory_limiter', 'resource', 'batch', 'tail_sampling'],
  exporters: ['otlp_grpc', 'otlp_http', 'prometheus', 'debug'],
  extensions: ['health_check'],
  connectors: [],
};
/** Removed (`jaeger`: Jaeger takes OTLP) or deprecated aliases (`otlp` → otlp_grpc, `otlphttp` → otlp_http). */
const DEPRECATED_EXPORTERS = ['jaeger', 'jaeger_thrift', 'otlp', 'otlphttp'];

const CONFIGS = {
  sidecar: 'otel-collector.yaml',
  gateway: 'deploy/otel-gateway.yaml',
} as const;

const text = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const load = (file: string) => parse(text(file)) as CollectorConfig;
const typeOf = (id: string) => id.split('/')[0] ?? id;

function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`missing: ${what}`);
  return value;
}

function hostPort(endpoint: string): { host: string; port: number } {
  const url = new URL(`tcp://${endpoint}`);
  return { host: url.hostname, port: Number(url.port) };
}

function endpointOf(component: Record<string, unknown> | null | undefined): string {
  const endpoint = component?.endpoint;
  if (typeof endpoint !== 'string') throw new Error('component has no endpoint');
  return endpoint;
}

/** Every `endpoint` under the OTLP receiver's protocols. */
function receiverEndpoints(config: CollectorConfig): string[] {
  return Object.values(config.receivers ?? {}).flatMap((receiver) => {
    const protocols = (receiver?.protocols ?? {}) as Record<string, { endpoint?: string } | null>;
    return Object.values(protocols).map((p) => must(p?.endpoint, 'receiver endpoint'));
  });
}

describe.each(Object.entries(CONFIGS))('%s collector (%s)', (role, file) => {
  const config = load(file);
  const pipelines = Object.entries(config.service.pipelines);

  it('has traces and metrics pipelines', () => {
    expect(Object.keys(config.service.pipelines).sort()).toEqual(['metrics', 'traces']);
  });

  it('defines every component a pipeline or the service uses, and uses every one it defines', () => {
    const used = new Set<string>();
    for (const [name, p] of pipelines) {
      const refs: [Section, string[]][] = [
        ['receivers', p.receivers],
        ['processors', p.processors ?? []],
        ['exporters', p.exporters],
      ];
      expect(p.receivers.length, `${name} receivers`).toBeGreaterThan(0);
      expect(p.exporters.length, `${name} exporters`).toBeGreaterThan(0);
      for (const [section, ids] of refs) {
        for (const id of ids) {
          expect(Object.keys(config[section] ?? {}), `${name} uses ${section} ${id}`).toContain(id);
          used.add(`${section}:${id}`);
        }
      }
    }
    for (const id of config.service.extensions ?? []) {
      expect(Object.keys(config.extensions ?? {})).toContain(id);
      used.add(`extensions:${id}`);
    }
    for (const section of ['receivers', 'processors', 'exporters', 'extensions'] as const) {
      for (const id of Object.keys(config[section] ?? {})) {
        expect(used.has(`${section}:${id}`), `${section} ${id} is defined but unused`).toBe(true);
      }
    }
  });

  it('uses only component types of the contrib distribution, and no deprecated exporter', () => {
    for (const section of Object.keys(KNOWN) as Section[]) {
      for (const id of Object.keys(config[section] ?? {})) {
        expect(KNOWN[section], `${section} ${id}`).toContain(typeOf(id));
      }
    }
    for (const id of Object.keys(config.exporters ?? {})) {
      expect(DEPRECATED_EXPORTERS).not.toContain(typeOf(id));
    }
  });

  it('limits memory first and batches last in every pipeline', () => {
    for (const [name, p] of pipelines) {
      const processors = (p.processors ?? []).map(typeOf);
      expect(processors[0], name).toBe('memory_limiter');
      expect(processors.at(-1), name).toBe('batch');
    }
    const limiter = must(config.processors?.memory_limiter, 'memory_limiter');
    expect(limiter.check_interval).toBeDefined();
    expect(limiter.limit_percentage ?? limiter.limit_mib).toBeDefined();
  });

  it('serves health_check on all interfaces at 13133, for the kubelet', () => {
    expect(config.service.extensions).toContain('health_check');
    expect(hostPort(endpointOf(config.extensions?.health_check))).toEqual({
      host: '0.0.0.0',
      port: 13133,
    });
  });

  it('exports over plaintext gRPC to a host:port inside the cluster', () => {
    for (const [id, exporter] of Object.entries(config.exporters ?? {})) {
      if (typeOf(id) !== 'otlp_grpc') continue;
      const endpoint = endpointOf(exporter);
      expect(endpoint, id).not.toMatch(/^[a-z]+:\/\//);
      expect(exporter?.tls).toEqual({ insecure: true });
    }
  });

  it('refers to environment variables only as ${env:NAME} or ${env:NAME:-default}', () => {
    const references = [...text(file).matchAll(/\$\{[^}]*\}/g)].map((m) => m[0]);
    for (const ref of references) {
      expect(ref, `in ${role}`).toMatch(/^\$\{env:[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$/);
    }
  });
});

describe('sidecar collector', () => {
  const config = load(CONFIGS.sidecar);

  it('accepts OTLP from its own pod only', () => {
    const endpoints = receiverEndpoints(config);
    expect(endpoints.map((e) => hostPort(e).port).sort()).toEqual([4317, 4318]);
    for (const endpoint of endpoints) {
      expect(['localhost', '127.0.0.1'], endpoint).toContain(hostPort(endpoint).host);
    }
  });

  it('adds resource attributes before batching', () => {
    for (const p of Object.values(config.service.pipelines)) {
      expect(p.processors).toEqual(['memory_limiter', 'resource', 'batch']);
    }
  });

  it('is probed by the Deployment on its health_check port', () => {
    const deployment = parse(text('deploy/k8s/base/deployment.yaml')) as IDeployment;
    const sidecar: IContainer = must(
      deployment.spec?.template.spec?.initContainers?.find((c) => c.name === 'otel-collector'),
      'sidecar',
    );
    const port = hostPort(endpointOf(config.extensions?.health_check)).port;
    for (const probe of [sidecar.startupProbe, sidecar.readinessProbe, sidecar.livenessProbe]) {
      expect(must(probe, 'probe').httpGet?.port).toBe(port);
    }
    expect(sidecar.ports?.map((p) => p.containerPort)).toContain(port);
  });
});

describe('gateway collector', () => {
  const config = load(CONFIGS.gateway);
  const sampling = must(config.processors?.tail_sampling, 'tail_sampling');
  const policies = sampling.policies as { name: string; type: string; [kind: string]: unknown }[];
  const policy = (type: string) =>
    must(
      policies.find((p) => p.type === type),
      `${type} policy`,
    )[type] as Record<string, unknown>;

  it('accepts OTLP from other pods', () => {
    const endpoints = receiverEndpoints(config);
    expect(endpoints).toEqual(['0.0.0.0:4317', '0.0.0.0:4318']);
  });

  it('tail-samples traces after limiting memory and before batching', () => {
    expect(config.service.pipelines.traces?.processors).toEqual([
      'memory_limiter',
      'tail_sampling',
      'batch',
    ]);
    expect(sampling.decision_wait).toBeDefined();
  });

  it('keeps every error, every slow trace and a share of the rest', () => {
    expect(policy('status_code').status_codes).toEqual(['ERROR']);
    expect(policy('latency').threshold_ms).toBeGreaterThan(0);
    const share = policy('probabilistic').sampling_percentage;
    expect(share).toBeGreaterThan(0);
    expect(share).toBeLessThan(100);
  });

  it('sends traces to Jaeger over OTLP', () => {
    const exporters = config.service.pipelines.traces?.exporters ?? [];
    expect(exporters).toHaveLength(1);
    const [id] = exporters;
    expect(typeOf(must(id, 'exporter'))).toBe('otlp_grpc');
    // Set once, in the gateway's kustomization (otel-gateway-endpoints); see deploy-manifests.test.ts.
    expect(endpointOf(config.exporters?.[must(id, 'exporter')])).toBe(
      '${env:JAEGER_OTLP_ENDPOINT}',
    );
  });

  it('is probed by its Deployment on its health_check port', () => {
    const deployment = parse(
      text('deploy/k8s/otel-gateway/base/sampler-deployment.yaml'),
    ) as IDeployment;
    const port = hostPort(endpointOf(config.extensions?.health_check)).port;
    const container = must(deployment.spec?.template.spec?.containers[0], 'gateway container');
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(must(probe, 'probe').httpGet?.port).toBe(port);
    }
  });
});
