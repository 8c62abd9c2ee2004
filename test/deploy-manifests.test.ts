import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import * as certManagerV1 from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import * as monitoringV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as batchV1 from 'kubernetes-models/batch/v1';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as coreV1 from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { CONFIG_ENV_NAMES } from '../src/config';

/**
 * Checks the deployment files offline, against each other and against the app:
 * every kustomization under deploy/k8s is rendered (by our own small reader of
 * the few kustomize features we use, compared with `kubectl kustomize` when that
 * exists), every object is validated against the Kubernetes schema, and the
 * wiring that no schema sees (ports, env names, secrets, selectors, collector
 * endpoints, the image's entry point) is asserted.
 */

const ROOT = path.resolve(__dirname, '..');
const K8S = path.join(ROOT, 'deploy/k8s');
const rel = (p: string) => path.relative(ROOT, p);

const APP = 'swap-service';
const SIDECAR = 'otel-collector';
const SECRET = 'swap-service-secrets';
/** tls.crt, tls.key and ca.crt, from an issuer (deploy/k8s/cert-manager in dev). */
const TLS_SECRET = 'swap-service-tls';
const GRPC_PORT = 50051;
const METRICS_PORT = 9464;
const ENTRY_POINT = [
  'node',
  '--enable-source-maps',
  '--require',
  './dist/telemetry.js',
  'dist/main.js',
];
/** Set in every environment: production configuration refuses to start without them. */
const REQUIRED_IN_PROD = [
  'DATABASE_URL',
  'REDIS_URL',
  'NODE_ENV',
  'GRPC_TLS_CERT_FILE',
  'GRPC_TLS_KEY_FILE',
];
const SECRET_ENV = ['DATABASE_URL', 'REDIS_URL'];

// --- objects ---------------------------------------------------------------

type Json = Record<string, unknown>;
type Container = coreV1.IContainer;
type PodSpec = coreV1.IPodSpec;

interface K8sObject extends Json {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isK8sObject(value: unknown): value is K8sObject {
  return (
    isRecord(value) &&
    typeof value.apiVersion === 'string' &&
    typeof value.kind === 'string' &&
    isRecord(value.metadata) &&
    typeof value.metadata.name === 'string'
  );
}

function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`missing: ${what}`);
  return value;
}

function readDocs(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${rel(file)}: ${doc.errors[0]?.message}`);
    return doc.toJS() as unknown;
  });
}

function readObjects(file: string): K8sObject[] {
  return readDocs(file).map((doc) => {
    if (!isK8sObject(doc)) throw new Error(`${rel(file)}: a document is not a Kubernetes object`);
    return doc;
  });
}

const clone = <T>(value: T): T => structuredClone(value);

// --- rendering the kustomizations ------------------------------------------

interface Kustomization {
  namespace?: string;
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  configMapGenerator?: {
    name: string;
    behavior?: 'create' | 'merge' | 'replace';
    envs?: string[];
    files?: string[];
    literals?: string[];
  }[];
  patches?: { path: string; target?: { kind?: string; name?: string } }[];
  [field: string]: unknown;
}

/** What our reader implements; anything else in a kustomization fails the test. */
const KUSTOMIZE_FIELDS = new Set([
  'apiVersion',
  'kind',
  'namespace',
  'resources',
  'images',
  'configMapGenerator',
  'patches',
]);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PriorityClass']);

function readKustomization(dir: string): Kustomization {
  const k = parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  for (const field of Object.keys(k)) {
    if (!KUSTOMIZE_FIELDS.has(field)) {
      throw new Error(`${rel(dir)}: kustomize field '${field}' is not understood by this test`);
    }
  }
  return k;
}

function parseEnvFile(text: string): Record<string, string> {
  const data: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0) throw new Error(`bad env line: ${line}`);
    data[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  return data;
}

function generatedData(
  dir: string,
  gen: NonNullable<Kustomization['configMapGenerator']>[number],
): Record<string, string> {
  const data: Record<string, string> = {};
  for (const file of gen.envs ?? []) {
    Object.assign(data, parseEnvFile(readFileSync(path.join(dir, file), 'utf8')));
  }
  for (const literal of gen.literals ?? []) Object.assign(data, parseEnvFile(literal));
  for (const entry of gen.files ?? []) {
    const [key, file] = entry.includes('=') ? entry.split('=', 2) : [path.basename(entry), entry];
    data[must(key, entry)] = readFileSync(path.join(dir, must(file, entry)), 'utf8');
  }
  return data;
}

/** Lists merged by this key, as strategic merge does; other lists are replaced. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
};

function strategicMerge(target: unknown, patch: unknown, field = ''): unknown {
  if (isRecord(target) && isRecord(patch)) {
    const out: Json = { ...target };
    for (const [key, value] of Object.entries(patch)) {
      if (key.startsWith('$')) throw new Error(`patch directive ${key} is not supported here`);
      out[key] = value === null ? undefined : strategicMerge(target[key], value, key);
    }
    return out;
  }
  const mergeKey = MERGE_KEYS[field];
  if (Array.isArray(target) && Array.isArray(patch) && mergeKey) {
    // As kustomize does it: the patch's items first, in its order, merged with
    // the items they name; then the items the patch does not name.
    const key = (item: unknown) => (isRecord(item) ? item[mergeKey] : undefined);
    const named = new Set((patch as unknown[]).map(key));
    const out: unknown[] = (patch as unknown[]).map((item) => {
      const original = (target as unknown[]).find((t) => key(t) === key(item));
      return original === undefined ? clone(item) : strategicMerge(original, item);
    });
    out.push(...(target as unknown[]).filter((t) => !named.has(key(t))));
    return out;
  }
  return clone(patch);
}

function jsonPatch(target: Json, ops: unknown[]): void {
  for (const op of ops) {
    if (!isRecord(op) || typeof op.path !== 'string') throw new Error('bad JSON patch op');
    const keys = op.path.split('/').slice(1);
    const last = must(keys.pop(), op.path);
    let parent: unknown = target;
    for (const key of keys) parent = (parent as Json)[key];
    if (!isRecord(parent) && !Array.isArray(parent)) throw new Error(`no ${op.path}`);
    const holder = parent as Json;
    switch (op.op) {
      case 'test':
        if (JSON.stringify(holder[last]) !== JSON.stringify(op.value)) {
          throw new Error(`JSON patch test failed at ${op.path}`);
        }
        break;
      case 'replace':
      case 'add':
        holder[last] = clone(op.value);
        break;
      default:
        throw new Error(`JSON patch op ${String(op.op)} is not supported here`);
    }
  }
}

function podSpecOf(obj: K8sObject): PodSpec | undefined {
  const spec = obj.spec;
  if (!isRecord(spec)) return undefined;
  if (obj.kind === 'Pod') return spec as unknown as PodSpec;
  const template = isRecord(spec.template) ? spec.template : undefined;
  return template && isRecord(template.spec) ? (template.spec as unknown as PodSpec) : undefined;
}

function allContainers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

function setImages(objects: K8sObject[], images: NonNullable<Kustomization['images']>): void {
  for (const obj of objects) {
    const spec = podSpecOf(obj);
    if (!spec) continue;
    for (const c of allContainers(spec)) {
      const name = must(c.image, `${obj.metadata.name}/${c.name} image`).replace(/[:@].*$/, '');
      const image = images.find((i) => i.name === name);
      if (!image) continue;
      const base = image.newName ?? name;
      c.image = image.digest ? `${base}@${image.digest}` : `${base}:${image.newTag ?? 'latest'}`;
    }
  }
}

/** Renders a kustomization with the features our files use, in kustomize's order. */
function renderOwn(dir: string): K8sObject[] {
  const k = readKustomization(dir);
  const objects: K8sObject[] = [];
  for (const resource of k.resources ?? []) {
    const p = path.resolve(dir, resource);
    objects.push(...(statSync(p).isDirectory() ? renderOwn(p) : readObjects(p)));
  }
  for (const gen of k.configMapGenerator ?? []) {
    const data = generatedData(dir, gen);
    const existing = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === gen.name);
    if ((gen.behavior ?? 'create') === 'create') {
      if (existing) throw new Error(`${rel(dir)}: ConfigMap ${gen.name} generated twice`);
      objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name }, data });
    } else {
      const cm = must(existing, `${rel(dir)}: ConfigMap ${gen.name} to ${gen.behavior}`);
      cm.data = gen.behavior === 'merge' ? { ...(cm.data as Json), ...data } : data;
    }
  }
  for (const patch of k.patches ?? []) {
    const docs = readDocs(path.join(dir, patch.path));
    const [first] = docs;
    if (Array.isArray(first)) {
      const t = must(patch.target, `${patch.path} target`);
      const matches = objects.filter((o) => o.kind === t.kind && o.metadata.name === t.name);
      expect(matches, `${patch.path} target`).toHaveLength(1);
      jsonPatch(must(matches[0], patch.path), first);
      continue;
    }
    for (const doc of docs) {
      if (!isK8sObject(doc)) throw new Error(`${patch.path}: not an object patch`);
      const at = objects.findIndex(
        (o) => o.kind === doc.kind && o.metadata.name === doc.metadata.name,
      );
      expect(at, `${patch.path}: ${doc.kind}/${doc.metadata.name} exists`).toBeGreaterThanOrEqual(
        0,
      );
      objects[at] = strategicMerge(objects[at], doc) as K8sObject;
    }
  }
  if (k.namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  if (k.images) setImages(objects, k.images);
  return objects;
}

/** kustomize's rendering, with generated names' content-hash suffixes removed. */
function renderWithKubectl(dir: string, generatedNames: Set<string>): K8sObject[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  const strip = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const m = /^(.+)-[a-z0-9]{10}$/.exec(value);
      return m?.[1] && generatedNames.has(m[1]) ? m[1] : value;
    }
    if (Array.isArray(value)) return value.map(strip);
    if (isRecord(value))
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v)]));
    return value;
  };
  return parseAllDocuments(text).map((d) => strip(d.toJS()) as K8sObject);
}

const byIdentity = (objects: K8sObject[]) =>
  [...objects].sort((a, b) => identity(a).localeCompare(identity(b)));
const identity = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
/** Drops keys whose value is undefined, as YAML output would. */
const normalized = (value: unknown): unknown => JSON.parse(JSON.stringify(value)) as unknown;

function findKustomizations(dir: string): string[] {
  const found: string[] = existsSync(path.join(dir, 'kustomization.yaml')) ? [dir] : [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) found.push(...findKustomizations(path.join(dir, entry.name)));
  }
  return found;
}

function findFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? findFiles(path.join(dir, e.name)) : [path.join(dir, e.name)],
  );
}

const KUSTOMIZATIONS = findKustomizations(K8S);
const RENDERED = new Map(KUSTOMIZATIONS.map((dir) => [rel(dir), renderOwn(dir)]));
const rendered = (name: string) => must(RENDERED.get(`deploy/k8s/${name}`), name);
/** What a cluster runs: the overlays, whose app manifests come from base. */
const ENVIRONMENTS = ['overlays/dev', 'overlays/prod'] as const;
const PROD_LIKE = ['base', 'overlays/prod', 'overlays/prod/migrate'] as const;

// --- schema ----------------------------------------------------------------

type Validatable = new (data: unknown) => { validate(): void };

// cert-manager's CRDs are not in kubernetes-models. Their objects are checked
// here against the part of cert-manager.io/v1 our files use, strictly, so a
// misspelt or misplaced field fails this test instead of the apply.
const goDuration = z.string().regex(/^(\d+(\.\d+)?(h|m|s))+$/, 'a Go duration such as 2160h');
const hours = (d: string) =>
  [...d.matchAll(/(\d+(?:\.\d+)?)(h|m|s)/g)].reduce(
    (sum, [, n, unit]) => sum + Number(n) / ({ h: 1, m: 60, s: 3600 } as const)[unit as 'h'],
    0,
  );
const dnsName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
const crdMetadata = z.strictObject({
  name: dnsName,
  namespace: dnsName.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
const KEY_USAGES = [
  'signing',
  'digital signature',
  'content commitment',
  'key encipherment',
  'key agreement',
  'data encipherment',
  'cert sign',
  'crl sign',
  'server auth',
  'client auth',
  'code signing',
  'email protection',
  'timestamping',
  'ocsp signing',
] as const;
const certificateSchema = z.strictObject({
  apiVersion: z.literal('cert-manager.io/v1'),
  kind: z.literal('Certificate'),
  metadata: crdMetadata,
  spec: z
    .strictObject({
      secretName: dnsName,
      issuerRef: z.strictObject({
        name: dnsName,
        kind: z.enum(['Issuer', 'ClusterIssuer']),
        group: z.literal('cert-manager.io'),
      }),
      isCA: z.boolean().optional(),
      commonName: z.string().min(1).max(64).optional(),
      dnsNames: z.array(z.string().min(1)).optional(),
      uris: z.array(z.url()).optional(),
      ipAddresses: z.array(z.ipv4().or(z.ipv6())).optional(),
      duration: goDuration.optional(),
      renewBefore: goDuration.optional(),
      usages: z.array(z.enum(KEY_USAGES)).optional(),
      privateKey: z
        .strictObject({
          algorithm: z.enum(['RSA', 'ECDSA', 'Ed25519']),
          size: z.number().int().positive().optional(),
          encoding: z.enum(['PKCS1', 'PKCS8']).optional(),
          rotationPolicy: z.enum(['Never', 'Always']).optional(),
        })
        .optional(),
    })
    .refine((spec) => spec.commonName || spec.dnsNames || spec.uris || spec.ipAddresses, {
      message: 'a Certificate names a subject: commonName, dnsNames, uris or ipAddresses',
    })
    .refine(
      (spec) =>
        !spec.duration || !spec.renewBefore || hours(spec.renewBefore) < hours(spec.duration),
      { message: 'renewBefore must be shorter than duration' },
    ),
});
const issuerSchema = z.strictObject({
  apiVersion: z.literal('cert-manager.io/v1'),
  kind: z.literal('Issuer'),
  metadata: crdMetadata,
  spec: z
    .strictObject({
      selfSigned: z.strictObject({}).optional(),
      ca: z.strictObject({ secretName: dnsName }).optional(),
    })
    .refine((spec) => Object.keys(spec).length === 1, {
      message: 'an Issuer has exactly one kind (selfSigned or ca here)',
    }),
});
function crdModel(schema: z.ZodType): Validatable {
  return class {
    constructor(private readonly data: unknown) {}
    validate(): void {
      schema.parse(this.data);
    }
  };
}

const MODELS: Record<string, Record<string, unknown>> = {
  v1: coreV1,
  'apps/v1': appsV1,
  'batch/v1': batchV1,
  'autoscaling/v2': autoscalingV2,
  'policy/v1': policyV1,
  'networking.k8s.io/v1': networkingV1,
  // The CRDs' own OpenAPI schemas (pinned @kubernetes-models packages, generated
  // from the upstream CRDs), and for cert-manager also a strict schema of the
  // fields we use, which catches a misspelt optional field the CRD would accept.
  'cert-manager.io/v1': {
    Certificate: bothModels(certManagerV1.Certificate as Validatable, crdModel(certificateSchema)),
    Issuer: bothModels(certManagerV1.Issuer as Validatable, crdModel(issuerSchema)),
  },
  'monitoring.coreos.com/v1': {
    PrometheusRule: monitoringV1.PrometheusRule,
    ServiceMonitor: monitoringV1.ServiceMonitor,
  },
};

function bothModels(first: Validatable, second: Validatable): Validatable {
  return class {
    constructor(private readonly data: unknown) {}
    validate(): void {
      new first(this.data).validate();
      new second(this.data).validate();
    }
  };
}

function modelFor(obj: { apiVersion: string; kind: string }): Validatable | undefined {
  return MODELS[obj.apiVersion]?.[obj.kind] as Validatable | undefined;
}

// --- lookups on rendered objects -------------------------------------------

function find<T = K8sObject>(objects: K8sObject[], kind: string, name: string): T {
  const obj = objects.find((o) => o.kind === kind && o.metadata.name === name);
  return must(obj, `${kind}/${name}`) as unknown as T;
}

const appDeployment = (objects: K8sObject[]) =>
  find<appsV1.IDeployment>(objects, 'Deployment', APP);
const podSpec = (d: appsV1.IDeployment) => must(d.spec?.template.spec, 'pod spec');
const appContainer = (d: appsV1.IDeployment) =>
  must(
    podSpec(d).containers.find((c) => c.name === APP),
    'app container',
  );
const sidecar = (d: appsV1.IDeployment) =>
  must(
    podSpec(d).initContainers?.find((c) => c.name === SIDECAR),
    'sidecar container',
  );

function configMapData(objects: K8sObject[], name: string): Record<string, string> {
  return (find(objects, 'ConfigMap', name).data ?? {}) as Record<string, string>;
}

/** Every variable a container gets, in the order Kubernetes defines them (envFrom first). */
function containerEnv(
  objects: K8sObject[],
  c: Container,
): { name: string; value?: string; source: string; entry?: coreV1.IEnvVar }[] {
  const fromMaps = (c.envFrom ?? []).flatMap((from) => {
    const name = must(from.configMapRef?.name, `${c.name}: only configMapRef envFrom is expected`);
    return Object.entries(configMapData(objects, name)).map(([key, value]) => ({
      name: key,
      value,
      source: `ConfigMap ${name}`,
    }));
  });
  const own = (c.env ?? []).map((e) => ({ name: e.name, value: e.value, source: 'env', entry: e }));
  return [...fromMaps, ...own];
}

function envValue(objects: K8sObject[], c: Container, name: string): string | undefined {
  return containerEnv(objects, c)
    .filter((e) => e.name === name)
    .at(-1)?.value;
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string>) {
  const entries = Object.entries(must(selector, 'selector'));
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

function workloads(objects: K8sObject[]) {
  return objects.flatMap((o) => {
    const spec = podSpecOf(o);
    const template = (o.spec as Json | undefined)?.template as
      { metadata?: { labels?: Record<string, string> } } | undefined;
    return spec ? [{ obj: o, spec, labels: template?.metadata?.labels ?? {} }] : [];
  });
}

/** `host:port` or `scheme://host:port[/path]` → host and port. */
function hostPort(endpoint: string): { host: string; port: number } {
  const url = new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`);
  return { host: url.hostname, port: Number(url.port) };
}

/** The collector's `${env:NAME:-default}`, with the container's env. */
function expandCollectorEnv(value: string, env: Record<string, string | undefined>): string {
  return value.replace(
    /\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
    (_, name: string, def?: string) => must(env[name] ?? def, `collector env ${name}`),
  );
}

/** A container's variables by name (envFrom ConfigMaps first, then its own env). */
function envOf(objects: K8sObject[], c: Container): Record<string, string | undefined> {
  return Object.fromEntries(containerEnv(objects, c).map((e) => [e.name, e.value]));
}

interface ExporterConfig {
  endpoint?: string;
  resolver?: { dns?: { hostname: string; port: number } };
}

interface LoadBalancerConfig {
  receivers: CollectorConfig['receivers'];
  exporters: Record<
    string,
    { routing_key: string; resolver: { dns: { hostname: string; port: number } } }
  >;
  service: { pipelines: Record<string, { exporters: string[] }> };
}

interface CollectorConfig {
  receivers: Record<string, { protocols: Record<string, { endpoint: string }> }>;
  exporters: Record<string, { endpoint?: string }>;
  extensions: Record<string, { endpoint?: string }>;
}

/** The collector config a container runs: the ConfigMap file its --config flag names. */
function mountedCollectorConfig(
  objects: K8sObject[],
  spec: PodSpec,
  c: Container,
): { config: CollectorConfig; text: string } {
  const flag = must(
    c.args?.find((a) => a.startsWith('--config=')),
    `${c.name} --config`,
  );
  const file = flag.slice('--config='.length);
  const mount = must(
    c.volumeMounts?.find((m) => path.dirname(file) === m.mountPath),
    `${c.name}: a mount at ${path.dirname(file)}`,
  );
  const volume = must(
    spec.volumes?.find((v) => v.name === mount.name),
    `volume ${mount.name}`,
  );
  const cmName = must(volume.configMap?.name, `${mount.name} is a ConfigMap`);
  const text = must(configMapData(objects, cmName)[path.basename(file)], `${cmName} key`);
  return { config: parse(text) as CollectorConfig, text };
}

/** Resolves `host:port` to the Service of that name and the pods behind the port. */
function serviceBehind(objects: K8sObject[], endpoint: string) {
  const { host, port } = hostPort(endpoint);
  const service = find<coreV1.IService>(objects, 'Service', host);
  const servicePort = must(
    service.spec?.ports?.find((p) => p.port === port),
    `${host} exposes ${port}`,
  );
  const backends = workloads(objects).filter((w) => matches(service.spec?.selector, w.labels));
  expect(backends, `pods behind Service ${host}`).not.toHaveLength(0);
  const targetPorts = backends.map((w) =>
    containerPortOf(w.spec, servicePort.targetPort ?? servicePort.port),
  );
  return { service, backends, targetPorts };
}

function containerPortOf(spec: PodSpec, target: number | string): number {
  if (typeof target === 'number') return target;
  const port = allContainers(spec)
    .flatMap((c) => c.ports ?? [])
    .find((p) => p.name === target);
  return must(port, `container port named ${target}`).containerPort;
}

// --- tests -----------------------------------------------------------------

describe('kustomize tree', () => {
  it('has the expected kustomizations', () => {
    expect([...RENDERED.keys()].sort()).toEqual(
      expect.arrayContaining([
        'deploy/k8s/base',
        'deploy/k8s/jobs/migrate',
        'deploy/k8s/monitoring',
        'deploy/k8s/otel-gateway',
        'deploy/k8s/otel-gateway/base',
        'deploy/k8s/overlays/dev',
        'deploy/k8s/overlays/dev/migrate',
        'deploy/k8s/overlays/prod',
        'deploy/k8s/overlays/prod/migrate',
      ]),
    );
  });

  // kubectl (with its bundled kustomize) is on every machine of this project.
  it.each(KUSTOMIZATIONS.map(rel))('%s renders as kustomize renders it', (dir) => {
    const own = must(RENDERED.get(dir), dir);
    const generated = new Set(
      own.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name),
    );
    const theirs = renderWithKubectl(path.join(ROOT, dir), generated);
    expect(normalized(byIdentity(theirs))).toEqual(normalized(byIdentity(own)));
  });

  it('uses every file under deploy/k8s (or it is the documented secret example)', () => {
    const used = new Set<string>();
    for (const dir of KUSTOMIZATIONS) {
      const k = readKustomization(dir);
      used.add(path.join(dir, 'kustomization.yaml'));
      for (const r of k.resources ?? []) used.add(path.resolve(dir, r));
      for (const p of k.patches ?? []) used.add(path.resolve(dir, p.path));
      for (const g of k.configMapGenerator ?? []) {
        for (const f of [...(g.envs ?? []), ...(g.files ?? [])]) {
          used.add(path.resolve(dir, f.includes('=') ? f.slice(f.indexOf('=') + 1) : f));
        }
      }
    }
    const orphans = findFiles(K8S)
      .filter((f) => !used.has(f) && path.basename(f) !== 'secret.example.yaml')
      .map(rel);
    expect(orphans).toEqual([]);
  });

  it('keeps the copies of the collector configs and the policy identical to their sources', () => {
    const pairs = [
      ['otel-collector.yaml', 'deploy/k8s/base/config/otel-collector.yaml'],
      ['deploy/otel-gateway.yaml', 'deploy/k8s/otel-gateway/base/config/otel-gateway.yaml'],
      [
        'deploy/otel-loadbalancer.yaml',
        'deploy/k8s/otel-gateway/base/config/otel-loadbalancer.yaml',
      ],
      ['src/auth/default-policy.yaml', 'deploy/k8s/base/config/authz-policy.yaml'],
    ];
    for (const [source, copy] of pairs) {
      const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');
      expect(read(must(copy, 'copy')), `${copy} differs; run: cp ${source} ${copy}`).toBe(
        read(must(source, 'source')),
      );
    }
  });
});

describe('Kubernetes schema', () => {
  it('validates every object in every YAML file under deploy/k8s', () => {
    const patchFiles = new Set(
      KUSTOMIZATIONS.flatMap((dir) =>
        (readKustomization(dir).patches ?? []).map((p) => path.resolve(dir, p.path)),
      ),
    );
    let validated = 0;
    for (const file of findFiles(K8S).filter((f) => /\.ya?ml$/.test(f) && !patchFiles.has(f))) {
      for (const doc of readDocs(file)) {
        if (!isK8sObject(doc)) continue; // collector configs
        const Model = modelFor(doc);
        if (!Model) continue; // Kustomization
        expect(() => new Model(doc).validate(), `${rel(file)}: ${doc.kind}`).not.toThrow();
        validated++;
      }
    }
    expect(validated).toBeGreaterThan(15);
  });

  it.each([...RENDERED.keys()])('validates every rendered object of %s', (dir) => {
    for (const obj of must(RENDERED.get(dir), dir)) {
      const Model = must(modelFor(obj), `a model for ${obj.apiVersion} ${obj.kind}`);
      expect(() => new Model(obj).validate(), `${dir}: ${identity(obj)}`).not.toThrow();
    }
  });
});

describe.each(['base', ...ENVIRONMENTS])('%s: the app Deployment', (name) => {
  const objects = rendered(name);
  const deployment = appDeployment(objects);
  const spec = podSpec(deployment);
  const app = appContainer(deployment);
  const labels = must(deployment.spec?.template.metadata?.labels, 'pod labels');

  it('probes the gRPC health service on the plaintext health port, beside the TLS port', () => {
    const configured = envValue(objects, app, 'GRPC_PORT');
    if (configured !== undefined) expect(Number(configured)).toBe(GRPC_PORT);
    expect(app.ports?.find((p) => p.name === 'grpc')?.containerPort).toBe(GRPC_PORT);
    // kubelet's gRPC probes speak no TLS, so they go to GRPC_HEALTH_PORT.
    const healthPort = Number(must(envValue(objects, app, 'GRPC_HEALTH_PORT'), 'GRPC_HEALTH_PORT'));
    expect(healthPort).not.toBe(GRPC_PORT);
    expect(app.ports?.find((p) => p.name === 'grpc-health')?.containerPort).toBe(healthPort);
    for (const probe of [app.startupProbe, app.readinessProbe, app.livenessProbe]) {
      expect(must(probe, 'probe').grpc?.port).toBe(healthPort);
    }
    const metrics = envValue(objects, app, 'METRICS_PORT');
    if (metrics !== undefined) expect(Number(metrics)).toBe(METRICS_PORT);
    expect(app.ports?.find((p) => p.name === 'metrics')?.containerPort).toBe(METRICS_PORT);
  });

  it('serves mTLS from the files of the mounted TLS Secret, mounted whole so renewals reach them', () => {
    const files = {
      GRPC_TLS_CERT_FILE: 'tls.crt',
      GRPC_TLS_KEY_FILE: 'tls.key',
      GRPC_TLS_CLIENT_CA_FILE: 'ca.crt',
    };
    for (const [name, key] of Object.entries(files)) {
      const file = must(envValue(objects, app, name), name);
      expect(path.posix.basename(file), name).toBe(key);
      const mount = must(
        app.volumeMounts?.find((m) => m.mountPath === path.posix.dirname(file)),
        `a mount at the directory of ${name}`,
      );
      // A subPath mount is never updated when the Secret is.
      expect(mount.subPath).toBeUndefined();
      expect(mount.readOnly).toBe(true);
      const volume = must(
        spec.volumes?.find((v) => v.name === mount.name),
        `volume ${mount.name}`,
      );
      expect(volume.secret?.secretName).toBe(TLS_SECRET);
      expect(volume.secret?.items).toBeUndefined();
    }
  });

  it('sends OTLP to the sidecar receiver it shares the pod with', () => {
    const endpoint = must(envValue(objects, app, 'OTEL_EXPORTER_OTLP_ENDPOINT'), 'OTLP endpoint');
    expect(endpoint).toBe('http://localhost:4318');
    expect(envValue(objects, app, 'OTEL_EXPORTER_OTLP_PROTOCOL')).toBe('http/protobuf');
    expect(envValue(objects, app, 'OTEL_SERVICE_NAME')).toBe(APP);
    const { config } = mountedCollectorConfig(objects, spec, sidecar(deployment));
    const receiver = hostPort(
      must(config.receivers.otlp?.protocols.http?.endpoint, 'http receiver'),
    );
    expect(receiver.port).toBe(hostPort(endpoint).port);
    expect(['localhost', '127.0.0.1']).toContain(receiver.host);
  });

  it('gets only variables the app reads (src/config.ts) or OpenTelemetry ones', () => {
    const allowed = (n: string) =>
      CONFIG_ENV_NAMES.includes(n) ||
      n.startsWith('OTEL_') ||
      n === 'POD_NAME' ||
      n === 'POD_NAMESPACE';
    const unknown = containerEnv(objects, app).filter((e) => !allowed(e.name));
    expect(unknown.map((e) => `${e.name} (${e.source})`)).toEqual([]);
  });

  it('provides everything production configuration requires', () => {
    const names = containerEnv(objects, app).map((e) => e.name);
    for (const required of REQUIRED_IN_PROD) {
      expect(CONFIG_ENV_NAMES, `${required} is read by the app`).toContain(required);
      expect(names).toContain(required);
    }
    expect(envValue(objects, app, 'NODE_ENV')).toBe('production');
  });

  it('takes DATABASE_URL and REDIS_URL from the Secret, never inline or from a ConfigMap', () => {
    const env = containerEnv(objects, app);
    for (const name of SECRET_ENV) {
      const entries = env.filter((e) => e.name === name);
      expect(entries.map((e) => e.source)).toEqual(['env']);
      expect(entries[0]?.entry?.value).toBeUndefined();
      expect(entries[0]?.entry?.valueFrom?.secretKeyRef).toEqual({ name: SECRET, key: name });
    }
  });

  it('expands $(VAR) only from variables defined before it, and names the pod and environment', () => {
    const env = containerEnv(objects, app);
    env.forEach((e, i) => {
      for (const [, ref] of (e.value ?? '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
        const definedBefore = env.slice(0, i).some((d) => d.name === ref);
        expect(definedBefore, `${e.name} refers to $(${ref}) before it is defined`).toBe(true);
      }
    });
    const field = (n: string) =>
      env.find((e) => e.name === n)?.entry?.valueFrom?.fieldRef?.fieldPath;
    expect(field('POD_NAME')).toBe('metadata.name');
    expect(field('POD_NAMESPACE')).toBe('metadata.namespace');
    const attributes = must(envValue(objects, app, 'OTEL_RESOURCE_ATTRIBUTES'), 'resource attrs');
    expect(attributes.split(',')).toEqual([
      'k8s.pod.name=$(POD_NAME)',
      'k8s.namespace.name=$(POD_NAMESPACE)',
      `deployment.environment.name=${name === 'overlays/dev' ? 'dev' : 'production'}`,
    ]);
  });

  it('runs the collector as a native sidecar with its own probes on the health_check port', () => {
    const c = sidecar(deployment);
    expect(c.restartPolicy).toBe('Always');
    expect(c.image).toMatch(/^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
    const { config } = mountedCollectorConfig(objects, spec, c);
    const health = hostPort(must(config.extensions.health_check?.endpoint, 'health_check'));
    expect(health.host).toBe('0.0.0.0');
    for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
      expect(must(probe, 'sidecar probe').httpGet?.port).toBe(health.port);
    }
  });

  it('drains before the grace period ends', () => {
    const preStop = must(app.lifecycle?.preStop, 'preStop');
    const pause =
      preStop.sleep?.seconds ??
      Number(/setTimeout\([^,]+,\s*(\d+)\)/.exec(preStop.exec?.command?.join(' ') ?? '')?.[1]) /
        1000;
    expect(pause).toBeGreaterThan(0);
    const drainMs = Number(envValue(objects, app, 'SHUTDOWN_GRACE_MS') ?? 10_000);
    expect(must(spec.terminationGracePeriodSeconds, 'grace')).toBeGreaterThan(
      pause + drainMs / 1000,
    );
  });

  it('spreads pods across nodes and writes only to an emptyDir at /tmp', () => {
    const byHost = spec.topologySpreadConstraints?.find(
      (t) => t.topologyKey === 'kubernetes.io/hostname',
    );
    expect(matches(byHost?.labelSelector?.matchLabels, labels)).toBe(true);
    const tmp = must(
      app.volumeMounts?.find((m) => m.mountPath === '/tmp'),
      '/tmp mount',
    );
    expect(spec.volumes?.find((v) => v.name === tmp.name)?.emptyDir).toBeDefined();
  });

  it('selects its own pods', () => {
    expect(matches(deployment.spec?.selector.matchLabels, labels)).toBe(true);
  });

  it('runs 3 replicas (dev: 1)', () => {
    expect(deployment.spec?.replicas).toBe(name === 'overlays/dev' ? 1 : 3);
  });

  it('has an HPA on the Deployment, within its replica range', () => {
    const hpa = find<autoscalingV2.IHorizontalPodAutoscaler>(
      objects,
      'HorizontalPodAutoscaler',
      APP,
    );
    expect(hpa.spec?.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: APP,
    });
    expect(hpa.spec?.minReplicas).toBe(deployment.spec?.replicas);
    if (name !== 'overlays/dev') expect(hpa.spec?.minReplicas).toBe(3);
    expect(must(hpa.spec, 'hpa').maxReplicas).toBeGreaterThan(must(hpa.spec?.minReplicas, 'min'));
    const cpu = hpa.spec?.metrics?.map((m) => m.containerResource ?? m.resource);
    expect(cpu?.map((m) => m?.name)).toEqual(['cpu']);
    for (const m of hpa.spec?.metrics ?? []) {
      if (m.containerResource) expect(m.containerResource.container).toBe(APP);
    }
  });

  it('has a PDB and Services that select the pods', () => {
    const pdb = find<policyV1.IPodDisruptionBudget>(objects, 'PodDisruptionBudget', APP);
    expect(matches(pdb.spec?.selector?.matchLabels, labels)).toBe(true);
    const service = find<coreV1.IService>(objects, 'Service', APP);
    expect(matches(service.spec?.selector, labels)).toBe(true);
    expect(service.spec?.ports).toEqual([
      expect.objectContaining({ name: 'grpc', port: GRPC_PORT, appProtocol: 'grpc' }),
    ]);
    const headless = find<coreV1.IService>(objects, 'Service', `${APP}-headless`);
    expect(headless.spec?.clusterIP).toBe('None');
    expect(matches(headless.spec?.selector, labels)).toBe(true);
  });

  it('limits traffic with a NetworkPolicy', () => {
    const policy = find<networkingV1.INetworkPolicy>(objects, 'NetworkPolicy', APP);
    const p = must(policy.spec, 'policy spec');
    expect(matches(p.podSelector?.matchLabels, labels)).toBe(true);
    expect(p.policyTypes?.sort()).toEqual(['Egress', 'Ingress']);
    const portsOf = (rules: { ports?: networkingV1.INetworkPolicyPort[] }[] | undefined) =>
      new Set((rules ?? []).flatMap((r) => (r.ports ?? []).map((x) => x.port)));
    expect([...portsOf(p.ingress)].sort()).toEqual([GRPC_PORT, METRICS_PORT]);
    expect([...portsOf(p.egress)].sort()).toEqual([4317, 4318, 5432, 53, 6379].sort());
    for (const rule of p.ingress ?? []) expect(rule.from?.length ?? 0).toBeGreaterThan(0);
    const grpc = must(
      p.ingress?.find((r) => r.ports?.some((x) => x.port === GRPC_PORT)),
      'gRPC ingress',
    );
    expect(grpc.from).toEqual(
      expect.arrayContaining([
        { podSelector: {} },
        expect.objectContaining({
          podSelector: { matchLabels: { 'swap-service-client': 'true' } },
        }),
      ]),
    );
    const metrics = must(
      p.ingress?.find((r) => r.ports?.some((x) => x.port === METRICS_PORT)),
      'metrics ingress',
    );
    expect(metrics.from?.[0]?.namespaceSelector?.matchLabels).toEqual({
      'kubernetes.io/metadata.name': 'monitoring',
    });
  });
});

describe.each([...RENDERED.keys()])('%s: every workload', (dir) => {
  const objects = must(RENDERED.get(dir), dir);

  it('sets requests, limits and a locked-down securityContext on every container', () => {
    for (const { obj, spec } of workloads(objects)) {
      const pod = spec.securityContext;
      expect(pod?.seccompProfile?.type, `${identity(obj)} seccomp`).toBe('RuntimeDefault');
      for (const c of allContainers(spec)) {
        const where = `${identity(obj)} container ${c.name}`;
        expect(c.resources?.limits?.cpu, `${where} cpu limit`).toBeDefined();
        expect(c.resources?.limits?.memory, `${where} memory limit`).toBeDefined();
        expect(c.resources?.requests, where).toBeDefined();
        const sc = c.securityContext;
        expect(sc?.runAsNonRoot ?? pod?.runAsNonRoot, `${where} runAsNonRoot`).toBe(true);
        expect(sc?.runAsUser ?? pod?.runAsUser, `${where} runAsUser`).toBeGreaterThan(0);
        expect(sc?.readOnlyRootFilesystem, `${where} readOnlyRootFilesystem`).toBe(true);
        expect(sc?.allowPrivilegeEscalation, `${where} allowPrivilegeEscalation`).toBe(false);
        expect(sc?.capabilities?.drop, `${where} drops capabilities`).toEqual(['ALL']);
        // base and jobs/ leave the app image to the overlays.
        if (dir.includes('/overlays/') || !c.image?.startsWith(APP)) {
          expect(c.image, `${where} image is pinned`).toMatch(/[:@](?!latest$)[^:@/]+$/);
        }
      }
    }
  });

  it('has Services whose selectors and target ports reach a container', () => {
    for (const service of objects.filter(
      (o) => o.kind === 'Service',
    ) as unknown as coreV1.IService[]) {
      const name = must(service.metadata?.name, 'service name');
      const backends = workloads(objects).filter((w) => matches(service.spec?.selector, w.labels));
      expect(backends.length, `pods behind Service ${name}`).toBeGreaterThan(0);
      for (const port of service.spec?.ports ?? []) {
        for (const w of backends)
          expect(containerPortOf(w.spec, port.targetPort ?? port.port)).toBeGreaterThan(0);
      }
    }
  });

  it('refers only to ConfigMaps that exist, and to no Secret but the app ones outside dev', () => {
    for (const { obj, spec } of workloads(objects)) {
      for (const v of spec.volumes ?? []) {
        if (v.configMap) find(objects, 'ConfigMap', must(v.configMap.name, 'cm'));
        if (v.secret && !dir.startsWith('deploy/k8s/overlays/dev')) {
          expect([SECRET, TLS_SECRET], `${identity(obj)} volume ${v.name}`).toContain(
            v.secret.secretName,
          );
        }
      }
      for (const c of allContainers(spec)) {
        for (const e of c.envFrom ?? []) {
          if (e.configMapRef) find(objects, 'ConfigMap', must(e.configMapRef.name, 'cm'));
        }
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef;
          if (ref && !dir.startsWith('deploy/k8s/overlays/dev')) {
            expect(ref.name, `${identity(obj)} ${e.name}`).toBe(SECRET);
          }
        }
      }
    }
  });
});

describe.each(PROD_LIKE)('%s: no secret values', (name) => {
  const objects = rendered(name);

  it('commits no Secret and no credentials in any value', () => {
    expect(objects.filter((o) => o.kind === 'Secret').map(identity)).toEqual([]);
    const credentials: string[] = [];
    const walk = (value: unknown, at: string) => {
      if (typeof value === 'string' && /[a-z]+:\/\/[^/\s:@]*:[^/\s@]+@/i.test(value))
        credentials.push(at);
      else if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${at}[${i}]`));
      else if (isRecord(value)) for (const [k, v] of Object.entries(value)) walk(v, `${at}.${k}`);
    };
    for (const obj of objects) walk(obj, identity(obj));
    expect(credentials).toEqual([]);
  });
});

describe('overlays', () => {
  it('prod runs NODE_ENV=production with 3 replicas and HPA minimum 3, from a tagged image', () => {
    const objects = rendered('overlays/prod');
    const app = appContainer(appDeployment(objects));
    expect(envValue(objects, app, 'NODE_ENV')).toBe('production');
    expect(appDeployment(objects).spec?.replicas).toBe(3);
    const hpa = find<autoscalingV2.IHorizontalPodAutoscaler>(
      objects,
      'HorizontalPodAutoscaler',
      APP,
    );
    expect(hpa.spec?.minReplicas).toBe(3);
    expect(app.image).toMatch(/^[^:]+\/swap-service:\d+\.\d+\.\d+$/);
    expect(envValue(objects, app, 'GRPC_REFLECTION')).toBe('false');
  });

  it('dev issues the mounted TLS Secret with cert-manager, for the names clients dial', () => {
    const objects = rendered('overlays/dev');
    type Certificate = z.infer<typeof certificateSchema>;
    type Issuer = z.infer<typeof issuerSchema>;
    const certificates = objects.filter(
      (o) => o.kind === 'Certificate',
    ) as unknown as Certificate[];
    const issuer = (ref: Certificate['spec']['issuerRef']) =>
      find<Issuer>(objects, ref.kind, ref.name);
    const server = must(
      certificates.find((c) => c.spec.secretName === TLS_SECRET),
      `a Certificate for ${TLS_SECRET}`,
    );
    expect(server.spec.usages).toContain('server auth');
    for (const name of [APP, `${APP}-headless`]) {
      find(objects, 'Service', name);
      expect(server.spec.dnsNames).toContain(name);
    }
    // Its issuer is a CA whose certificate (ca.crt) also signs the callers'.
    const caSecret = must(issuer(server.spec.issuerRef).spec.ca?.secretName, 'a CA issuer');
    const ca = must(
      certificates.find((c) => c.spec.secretName === caSecret),
      `the CA Certificate ${caSecret}`,
    );
    expect(ca.spec.isCA).toBe(true);
    expect(issuer(ca.spec.issuerRef).spec.selfSigned).toEqual({});
    const client = must(
      certificates.find((c) => c.spec.usages?.includes('client auth')),
      'a client Certificate',
    );
    expect(client.spec.issuerRef).toEqual(server.spec.issuerRef);
    expect(client.spec.uris?.[0]).toMatch(/^spiffe:\/\/[^/]+\/ns\/[^/]+\/sa\/[^/]+$/);
  });

  it("dev's gateway tiers: OTLP only from the app's pods, to the samplers only, then only to Jaeger", () => {
    const objects = rendered('overlays/dev');
    const policyOf = (name: string) =>
      must(find<networkingV1.INetworkPolicy>(objects, 'NetworkPolicy', name).spec, name);
    const [balancer] = serviceBehind(objects, 'otel-gateway:4317').backends;
    const [sampler] = serviceBehind(objects, 'otel-sampler-headless:4317').backends;
    const lb = policyOf('otel-gateway');
    const tail = policyOf('otel-sampler');
    expect(matches(lb.podSelector?.matchLabels, must(balancer, 'balancer').labels)).toBe(true);
    expect(matches(tail.podSelector?.matchLabels, must(sampler, 'sampler').labels)).toBe(true);
    for (const p of [lb, tail]) expect(p.policyTypes?.sort()).toEqual(['Egress', 'Ingress']);
    const otlpSources = (p: typeof lb) =>
      (p.ingress ?? [])
        .filter((r) => r.ports?.some((x) => x.port === 4317 || x.port === 4318))
        .flatMap((r) => must(r.from, 'OTLP sources'));
    const appLabels = must(appDeployment(objects).spec?.template.metadata?.labels, 'app labels');
    expect(otlpSources(lb).length).toBeGreaterThan(0);
    for (const from of otlpSources(lb))
      expect(matches(from.podSelector?.matchLabels, appLabels)).toBe(true);
    expect(otlpSources(tail).length).toBeGreaterThan(0);
    for (const from of otlpSources(tail)) {
      expect(matches(from.podSelector?.matchLabels, must(balancer, 'balancer').labels)).toBe(true);
    }
    const lbOut = (lb.egress ?? []).filter((r) => r.to?.length);
    expect(
      lbOut
        .flatMap((r) => r.to ?? [])
        .every((t) => matches(t.podSelector?.matchLabels, sampler!.labels)),
    ).toBe(true);
    // Jaeger is outside the cluster in prod, so the samplers may send to its port only.
    const samplerOut = (tail.egress ?? []).flatMap((r) => r.ports ?? []).map((x) => x.port);
    expect([...new Set(samplerOut)].sort()).toEqual([4317, 53]);
  });

  it('dev wires sidecar → load balancer → headless samplers → Jaeger, names and ports matching', () => {
    const objects = rendered('overlays/dev');
    const deployment = appDeployment(objects);
    const car = sidecar(deployment);
    const { config } = mountedCollectorConfig(objects, podSpec(deployment), car);
    const toGateway = expandCollectorEnv(
      must(config.exporters.otlp_grpc?.endpoint, 'exporter'),
      envOf(objects, car),
    );
    expect(toGateway).toBe('otel-gateway:4317');

    const gateway = serviceBehind(objects, toGateway);
    const [lb] = gateway.backends;
    expect(lb?.obj.spec).toEqual(expect.objectContaining({ replicas: 2 }));
    const lbContainer = must(lb?.spec.containers[0], 'balancer container');
    const lbConfig = mountedCollectorConfig(objects, must(lb, 'balancer').spec, lbContainer)
      .config as unknown as LoadBalancerConfig;
    const grpcIn = hostPort(must(lbConfig.receivers.otlp?.protocols.grpc?.endpoint, 'lb grpc'));
    expect(gateway.targetPorts).toEqual([grpcIn.port]);
    expect(grpcIn.host).toBe('0.0.0.0');
    // Traces are routed by trace ID to the samplers behind a headless Service.
    const byTrace = must(lbConfig.exporters['loadbalancing/traces'], 'loadbalancing exporter');
    expect(byTrace.routing_key).toBe('traceID');
    expect(lbConfig.service.pipelines.traces?.exporters).toEqual(['loadbalancing/traces']);
    const { hostname, port } = byTrace.resolver.dns;
    const samplers = serviceBehind(objects, `${hostname}:${port}`);
    expect(samplers.service.spec?.clusterIP).toBe('None');
    const [sampler] = samplers.backends;
    expect(must(sampler, 'sampler').obj.spec).toEqual(expect.objectContaining({ replicas: 2 }));
    const samplerContainer = must(sampler?.spec.containers[0], 'sampler container');
    const samplerConfig = mountedCollectorConfig(objects, sampler!.spec, samplerContainer).config;
    expect(samplers.targetPorts).toEqual([
      hostPort(must(samplerConfig.receivers.otlp?.protocols.grpc?.endpoint, 'sampler grpc')).port,
    ]);

    const toJaeger = expandCollectorEnv(
      must(samplerConfig.exporters['otlp_grpc/jaeger']?.endpoint, 'jaeger exporter'),
      envOf(objects, samplerContainer),
    );
    const jaeger = serviceBehind(objects, toJaeger);
    expect(jaeger.targetPorts).toEqual([4317]);
    expect(jaeger.backends[0]?.spec.containers[0]?.image).toMatch(/^jaegertracing\/jaeger:2\./);
    const ui = find<coreV1.IService>(objects, 'Service', 'jaeger-query');
    expect(ui.spec?.ports?.map((p) => p.port)).toEqual([16686]);

    // The app's NetworkPolicy lets the sidecar reach the gateway pods.
    const policy = find<networkingV1.INetworkPolicy>(objects, 'NetworkPolicy', APP);
    const egress = must(
      policy.spec?.egress?.find((r) => r.ports?.some((p) => p.port === grpcIn.port)),
      'egress to the gateway',
    );
    expect(egress.to?.some((t) => matches(t.podSelector?.matchLabels, lb?.labels ?? {}))).toBe(
      true,
    );
  });

  it('prod and the gateway: every exporter reaches a rendered Service, or the one external Jaeger', () => {
    const objects = [...rendered('overlays/prod'), ...rendered('otel-gateway')];
    // The documented external endpoint, set in exactly one place.
    const endpoints = configMapData(objects, 'otel-gateway-endpoints');
    const external = must(endpoints.JAEGER_OTLP_ENDPOINT, 'JAEGER_OTLP_ENDPOINT');
    const gatewayTree = readFileSync(
      path.join(K8S, 'otel-gateway/base/kustomization.yaml'),
      'utf8',
    );
    expect(gatewayTree).toContain(`JAEGER_OTLP_ENDPOINT=${external}`);
    let checked = 0;
    for (const w of workloads(objects)) {
      for (const c of allContainers(w.spec)) {
        if (!c.args?.some((a) => a.startsWith('--config='))) continue;
        const { config } = mountedCollectorConfig(objects, w.spec, c);
        const env = envOf(objects, c);
        const namespace = must(w.obj.metadata?.namespace, `${c.name} namespace`);
        for (const [id, exporter] of Object.entries(
          config.exporters as Record<string, ExporterConfig>,
        )) {
          const target =
            exporter.endpoint ??
            (exporter.resolver?.dns &&
              `${exporter.resolver.dns.hostname}:${exporter.resolver.dns.port}`);
          // The prometheus exporter is a listener that is scraped, not a destination.
          if (!target || id === 'prometheus') continue;
          const endpoint = expandCollectorEnv(target, env);
          checked++;
          if (endpoint === external) continue;
          const { host, port } = hostPort(endpoint);
          // name.namespace.svc.cluster.local, or a short name in the workload's own namespace.
          const [name, ns = namespace] = host.replace(/\.svc\.cluster\.local$/, '').split('.');
          const service = objects.find(
            (o) => o.kind === 'Service' && o.metadata.name === name && o.metadata.namespace === ns,
          ) as coreV1.IService | undefined;
          expect(service, `${w.obj.metadata?.name}/${c.name} ${id} → ${endpoint}`).toBeDefined();
          expect(
            service?.spec?.ports?.map((p) => p.port),
            `${id} → ${endpoint}`,
          ).toContain(port);
        }
      }
    }
    // The sidecar, the load balancer's two exporters and the sampler's Jaeger exporter.
    expect(checked).toBeGreaterThanOrEqual(4);
  });

  it("the README's production steps render and apply in order, each into a namespace that exists by then", () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('# prod:');
    expect(start, 'a "# prod:" block in the README').toBeGreaterThan(0);
    const block = readme.slice(start, readme.indexOf('\n\n', start));
    const namespaces = new Set<string>();
    const applied: string[] = [];
    for (const line of block.split('\n').map((l) => l.trim())) {
      const created = /^kubectl create namespace (\S+)/.exec(line);
      if (created) namespaces.add(must(created[1], 'namespace'));
      const apply = /^kubectl (?:-n (\S+) )?apply -k (\S+)/.exec(line);
      if (!apply) continue;
      const dir = must(apply[2], 'directory');
      applied.push(dir);
      const objects = parseAllDocuments(
        execFileSync('kubectl', ['kustomize', path.join(ROOT, dir)], { encoding: 'utf8' }),
      )
        .map((d) => d.toJS() as unknown)
        .filter(isK8sObject);
      for (const o of objects.filter((x) => x.kind === 'Namespace'))
        namespaces.add(o.metadata.name);
      for (const o of objects.filter((x) => !CLUSTER_SCOPED.has(x.kind))) {
        const ns = must(o.metadata.namespace ?? apply[1], `${dir}: ${identity(o)} has a namespace`);
        expect(namespaces, `${dir}: namespace ${ns} exists by then`).toContain(ns);
      }
    }
    expect(applied).toEqual([
      'deploy/k8s/otel-gateway',
      'deploy/k8s/cert-manager',
      'deploy/k8s/overlays/prod/migrate',
      'deploy/k8s/overlays/prod',
    ]);
  });

  it('dev has PostgreSQL and Redis where its Secret says', () => {
    const objects = rendered('overlays/dev');
    const secret = find<coreV1.ISecret>(objects, 'Secret', SECRET);
    for (const [key, port] of [
      ['DATABASE_URL', 5432],
      ['REDIS_URL', 6379],
    ] as const) {
      const url = new URL(must(secret.stringData?.[key], key));
      expect(Number(url.port)).toBe(port);
      expect(serviceBehind(objects, `${url.hostname}:${port}`).targetPorts).toEqual([port]);
    }
  });

  it.each(['overlays/dev/migrate', 'overlays/prod/migrate'])(
    '%s migrates with the app image and Secret, in the app namespace',
    (name) => {
      const job = find<batchV1.IJob>(rendered(name), 'Job', 'swap-service-migrate');
      const app = appContainer(appDeployment(rendered(path.dirname(name))));
      const c = must(job.spec?.template.spec?.containers[0], 'migrate container');
      expect(c.command).toEqual(['node', 'dist/dev/cli.js', 'migrate']);
      expect(c.image).toBe(app.image);
      expect(job.metadata?.namespace).toBe(
        appDeployment(rendered(path.dirname(name))).metadata?.namespace,
      );
      expect(job.spec?.template.spec?.restartPolicy).toBe('Never');
      const env = containerEnv(rendered(name), c);
      expect(env.find((e) => e.name === 'NODE_ENV')?.value).toBe('production');
      for (const key of SECRET_ENV) {
        expect(c.env?.find((e) => e.name === key)?.valueFrom?.secretKeyRef).toEqual({
          name: SECRET,
          key,
        });
      }
      for (const e of env) expect(CONFIG_ENV_NAMES).toContain(e.name);
    },
  );
});

// --- image -----------------------------------------------------------------

/** Dockerfile instructions (continuations joined, comments dropped), by stage. */
function dockerStages(text: string): { from: string; instructions: [string, string][] }[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: { from: string; instructions: [string, string][] }[] = [];
  for (const line of lines) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') stages.push({ from: args, instructions: [] });
    else if (op.toUpperCase() !== 'ARG' || stages.length > 0) {
      stages.at(-1)?.instructions.push([op.toUpperCase(), args]);
    }
  }
  return stages;
}

describe('deploy/Dockerfile', () => {
  const stages = dockerStages(readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8'));
  const final = must(stages.at(-1), 'final stage');
  const last = (op: string) => final.instructions.filter(([o]) => o === op).at(-1)?.[1];

  it('runs exactly the production entry point, in exec form', () => {
    const exec = (args: string | undefined) => (args ? (JSON.parse(args) as string[]) : []);
    expect([...exec(last('ENTRYPOINT')), ...exec(last('CMD'))]).toEqual(ENTRY_POINT);
  });

  it("runs the same entry point as the README's `npm start`, after its build", () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const [build, run] = must(manifest.scripts.start, 'start script').split(' && ');
    expect(build).toMatch(/^npm run build\b/);
    expect(run?.split(/\s+/)).toEqual(ENTRY_POINT);
  });

  it('runs on the image of the Node release that npm scripts run on, which it does not install', () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const release = must(manifest.devDependencies.node, 'the node dev dependency');
    expect(release).toMatch(/^24\.\d+\.\d+$/);
    expect(manifest.engines.node).toBe('>=24');
    expect(manifest.dependencies).not.toHaveProperty('node');
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(
      readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8'),
    )?.[1];
    expect(image).toBe(`node:${release}-bookworm-slim`);
    expect(stages.map((s) => s.from.split(/\s+/)[0])).toEqual(stages.map(() => '${NODE_IMAGE}'));
  });

  it('runs as a non-root numeric user with NODE_ENV=production', () => {
    const user = must(last('USER'), 'USER');
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(
      final.instructions.some(([o, a]) => o === 'ENV' && /\bNODE_ENV=production\b/.test(a)),
    ).toBe(true);
  });

  it('builds in one stage and ships production dependencies, dist/ and proto/ in the last', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const runs = stages.flatMap((s) =>
      s.instructions.filter(([o]) => o === 'RUN').map(([, a]) => a),
    );
    // A full install to compile, a production-only one to ship.
    expect(runs.some((r) => /npm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(runs).toContain('npm run build');
    expect(runs.some((r) => /npm ci\b.*--omit=dev/.test(r))).toBe(true);
    const copies = final.instructions.filter(([o]) => o === 'COPY').map(([, a]) => a);
    for (const dir of ['node_modules', 'dist', 'proto']) {
      expect(copies.some((c) => c.split(/\s+/).at(-1)?.replace(/^\.\//, '') === dir)).toBe(true);
    }
  });

  it('has a .dockerignore that keeps local artefacts out and the sources in', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['**/node_modules', 'dist', '.git', '.data']));
    for (const needed of ['src', 'proto', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      expect(ignored).not.toContain(needed);
    }
  });
});

describe('deploy/compose.yaml', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'deploy/compose.yaml'), 'utf8')) as {
    services: Record<
      string,
      {
        image?: string;
        build?: { context: string; dockerfile: string };
        environment?: Record<string, string>;
        network_mode?: string;
        volumes?: string[];
        command?: string[];
      }
    >;
  };
  const services = compose.services;
  const fromDeploy = (p: string) => path.resolve(ROOT, 'deploy', p);

  it('builds the app from deploy/Dockerfile and points it at a collector in its network namespace', () => {
    const app = must(services[APP], APP);
    const build = must(app.build, 'build');
    expect(existsSync(path.join(fromDeploy(build.context), build.dockerfile))).toBe(true);
    expect(path.join(fromDeploy(build.context), build.dockerfile)).toBe(
      path.join(ROOT, 'deploy/Dockerfile'),
    );
    expect(app.environment?.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://localhost:4318');
    expect(services[SIDECAR]?.network_mode).toBe(`service:${APP}`);
  });

  it('mounts the collector configs that exist, into the path each --config names', () => {
    for (const name of [SIDECAR, 'otel-gateway']) {
      const s = must(services[name], name);
      const [source, target] = must(s.volumes?.[0], `${name} volume`).split(':');
      expect(existsSync(fromDeploy(must(source, 'source')))).toBe(true);
      expect(s.command).toContain(`--config=${target}`);
      expect(s.image).toMatch(/^otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
    }
  });
});
