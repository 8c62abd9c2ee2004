import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  create,
  createFileRegistry,
  type FileRegistry,
  fromBinary,
  toJson,
} from '@bufbuild/protobuf';
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ServerReflectionRequest,
  ServerReflectionClient,
  type ServerReflectionResponse,
} from '../src/generated/grpc/reflection/v1/reflection';
import { ServerReflectionClient as V1AlphaServerReflectionClient } from '../src/generated/grpc/reflection/v1alpha/reflection';
import { DESCRIPTOR_SET_FILE } from '../src/grpc/reflection-service';
import type { ScheduleFixture } from './support/schedule-fixture';
import { fmitSwapPair } from './support/swap-pair';
import { type TestService, useTestService } from './support/test-service';

/**
 * Server reflection as real clients use it: `buf curl` with no schema but the
 * server's, and a grpc-js reflection client whose answers must build a strict
 * descriptor pool. Both only work if reflection serves the contract's true
 * files: real names, declared imports, proto field names.
 */

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));

let client: ServerReflectionClient;
beforeAll(() => {
  client = new ServerReflectionClient(ts.address, credentials.createInsecure());
});
afterAll(() => client.close());

/** Every service described in the descriptor set `npm run proto` builds: all of proto/. */
const DESCRIBED = [
  ...createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET_FILE)))
    .files,
].flatMap((file) => file.services.map((service) => service.typeName));

/** What an error carries in grpc-status-details-bin (see the README's "Errors"). */
const ERROR_DETAIL_TYPES = [
  'google.rpc.Status',
  'google.rpc.ErrorInfo',
  'google.rpc.BadRequest',
  'google.rpc.PreconditionFailure',
  'google.rpc.RetryInfo',
];

/** Sends `requests` on one reflection stream and collects the answers, in order. */
function reflect(
  requests: Partial<ServerReflectionRequest>[],
  on: Pick<ServerReflectionClient, 'serverReflectionInfo'> = client,
): Promise<ServerReflectionResponse[]> {
  return new Promise((resolve, reject) => {
    const answers: ServerReflectionResponse[] = [];
    const stream = on.serverReflectionInfo();
    stream.on('data', (answer: ServerReflectionResponse) => answers.push(answer));
    stream.on('error', reject);
    stream.on('end', () => resolve(answers));
    for (const request of requests) stream.write({ host: '', ...request });
    stream.end();
  });
}

const decode = (answer: ServerReflectionResponse | undefined): FileDescriptorProto[] =>
  (answer?.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );

/**
 * The pool a client builds: every file reflection sent for every listed
 * service, and for `symbols` (the types of error details, say).
 */
async function reflectedPool(
  symbols: string[] = [],
): Promise<{ services: string[]; registry: FileRegistry }> {
  const [listing] = await reflect([{ listServices: '' }]);
  const services = (listing?.listServicesResponse?.service ?? []).map((s) => s.name);
  const answers = await reflect(
    [...services, ...symbols].map((name) => ({ fileContainingSymbol: name })),
  );
  const files = new Map<string, FileDescriptorProto>();
  for (const answer of answers) {
    expect(answer.errorResponse).toBeUndefined();
    for (const file of decode(answer)) files.set(file.name, file);
  }
  // Strict: an import that was not sent, or a type no file declares, throws.
  const registry = createFileRegistry(
    create(FileDescriptorSetSchema, { file: dependenciesFirst(files) }),
  );
  return { services, registry };
}

/** The files in the order a FileDescriptorSet lists them: each after what it imports. */
function dependenciesFirst(files: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const sorted: FileDescriptorProto[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    const file = files.get(name);
    if (seen.has(name) || !file) return; // a missing import: the registry names it
    seen.add(name);
    file.dependency.forEach(visit);
    sorted.push(file);
  };
  for (const name of files.keys()) visit(name);
  return sorted;
}

describe('buf curl, with no local schema', () => {
  const run = promisify(execFile);
  const buf = path.resolve(__dirname, '../node_modules/.bin/buf');
  // An empty working directory: there is no proto/ or buf.yaml for buf to find.
  let cwd: string;
  beforeAll(() => {
    cwd = mkdtempSync(path.join(tmpdir(), 'swap-buf-curl-'));
  });
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  const url = (method = '') => `http://${ts.address}${method && `/${method}`}`;
  const flags = ['--protocol', 'grpc', '--http2-prior-knowledge'];

  /** Runs buf curl; resolves to what it printed and its exit code. */
  async function bufCurl(args: string[]) {
    try {
      const { stdout, stderr } = await run(buf, ['curl', ...flags, ...args], { cwd });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
      return { code, stdout, stderr };
    }
  }

  /** Calls `method` with `body` (proto field names) and parses the JSON answer. */
  async function call(method: string, body: object) {
    const answer = await bufCurl(['-d', JSON.stringify(body), url(method)]);
    expect(answer.stderr).toBe('');
    expect(answer.code).toBe(0);
    return JSON.parse(answer.stdout) as Record<string, unknown>;
  }

  it('lists every service of the contract, health and reflection included', async () => {
    const { stdout, code } = await bufCurl(['--list-services', url()]);
    expect(code).toBe(0);
    const listed = stdout.trim().split('\n').sort();
    expect(listed).toEqual([...DESCRIBED].sort());
    expect(listed).toEqual(
      expect.arrayContaining([
        'swap.v1.SwapService',
        'swap.v1.ConflictService',
        'swap.v1.AuditService',
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'grpc.reflection.v1alpha.ServerReflection',
      ]),
    );
  });

  it('lists the methods of every service', async () => {
    const { stdout, code } = await bufCurl(['--list-methods', url()]);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toEqual(
      expect.arrayContaining([
        'swap.v1.SwapService/ExecuteSwap',
        'swap.v1.SwapService/ValidateSwap',
        'swap.v1.SwapService/ListSwaps',
        'swap.v1.ConflictService/AutoResolve',
        'swap.v1.AuditService/VerifyAuditChain',
        'grpc.health.v1.Health/Check',
      ]),
    );
  });

  it('validates, executes and lists a swap from JSON bodies in proto field names', async () => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-03-04',
      targetWeek: '2030-03-18',
      reason: 'buf curl',
    });
    const swap = {
      source_faculty_id: pair.source,
      source_week: '2030-03-04',
      target_faculty_id: pair.target,
      target_week: '2030-03-18',
      swap_type: 'SWAP_TYPE_ONE_TO_ONE',
      reason: 'buf curl',
    };

    const validation = await call('swap.v1.SwapService/ValidateSwap', swap);
    expect(validation).toMatchObject({ valid: true });

    const executed = await call('swap.v1.SwapService/ExecuteSwap', {
      ...swap,
      request_id: randomUUID(),
    });
    const id = (executed.swap as { id: string }).id;
    expect(executed.swap).toMatchObject({
      status: 'SWAP_STATUS_EXECUTED',
      sourceWeek: '2030-03-04',
    });

    const listed = await call('swap.v1.SwapService/ListSwaps', {
      faculty_id: pair.target,
      page_size: 10,
    });
    expect((listed.swaps as { id: string }[]).map((s) => s.id)).toEqual([id]);
  });

  it("prints an error's details, which the reflected descriptors decode", async () => {
    const answer = await bufCurl([
      '-d',
      JSON.stringify({
        source_faculty_id: randomUUID(),
        source_week: '2030-04-01',
        target_faculty_id: randomUUID(),
        swap_type: 'SWAP_TYPE_ABSORB',
        reason: 'buf curl',
        request_id: randomUUID(),
      }),
      url('swap.v1.SwapService/ExecuteSwap'),
    ]);
    expect(answer.code).not.toBe(0);
    const error = JSON.parse(answer.stderr) as {
      code: string;
      message: string;
      details: { type: string; value: string }[];
    };
    expect(error.code).toBe('not_found');
    expect(error.message).toMatch(/^no person with id /);
    const detail = error.details.find((d) => d.type === 'google.rpc.ErrorInfo');
    expect(detail).toBeDefined();

    // A client with no local schema reads the detail with the types reflection sends.
    const { registry } = await reflectedPool([detail!.type]);
    const errorInfo = registry.getMessage(detail!.type)!;
    const info = toJson(errorInfo, fromBinary(errorInfo, Buffer.from(detail!.value, 'base64')));
    expect(info).toMatchObject({
      reason: 'FACULTY_NOT_FOUND',
      domain: 'swap-service.residency.v1',
    });
  });
});

describe('the reflected descriptors', () => {
  it('build a strict descriptor pool in which every service and method resolves', async () => {
    const { services, registry } = await reflectedPool(ERROR_DETAIL_TYPES);
    expect([...services].sort()).toEqual([...DESCRIBED].sort());
    const unresolved: string[] = [];
    for (const name of services) {
      const service = registry.getService(name);
      if (!service) unresolved.push(name);
      for (const method of service?.methods ?? []) {
        for (const type of [method.input, method.output]) {
          if (registry.getMessage(type.typeName) !== type)
            unresolved.push(`${name}.${method.name}`);
        }
      }
    }
    expect(unresolved).toEqual([]);
    expect(registry.getService('swap.v1.SwapService')?.methods.map((m) => m.name)).toEqual([
      'ExecuteSwap',
      'ValidateSwap',
      'RollbackSwap',
      'GetSwap',
      'ListSwaps',
    ]);
    expect(ERROR_DETAIL_TYPES.filter((type) => !registry.getMessage(type))).toEqual([]);
  });

  it('are the true files: their names, their imports, proto field names with json_name, comments', async () => {
    const [byName] = await reflect([{ fileByFilename: 'swap/v1/swap.proto' }]);
    const [swapFile, ...imports] = decode(byName);
    expect(swapFile?.name).toBe('swap/v1/swap.proto');
    expect(swapFile?.package).toBe('swap.v1');
    expect(swapFile?.dependency).toEqual(['google/protobuf/timestamp.proto']);
    expect(imports.map((f) => f.name)).toEqual(['google/protobuf/timestamp.proto']);

    const request = swapFile?.messageType.find((m) => m.name === 'ExecuteSwapRequest');
    expect(request?.field.map((f) => [f.name, f.jsonName])).toEqual(
      expect.arrayContaining([
        ['source_faculty_id', 'sourceFacultyId'],
        ['request_id', 'requestId'],
      ]),
    );
    // Comments come along, so a client can describe the API.
    const comments = (swapFile?.sourceCodeInfo?.location ?? []).map((l) => l.leadingComments);
    expect(comments.join('\n')).toMatch(/\S/);

    const [conflict] = await reflect([{ fileContainingSymbol: 'swap.v1.ConflictService' }]);
    expect(decode(conflict).map((f) => f.name)).toEqual([
      'swap/v1/conflict.proto',
      'google/protobuf/timestamp.proto',
      'swap/v1/swap.proto',
    ]);
    const [health] = await reflect([{ fileContainingSymbol: 'grpc.health.v1.Health.Check' }]);
    expect(decode(health).map((f) => f.name)).toEqual(['grpc/health/v1/health.proto']);
  });

  it('find nested symbols, fields and enum values, and answer NOT_FOUND for the unknown', async () => {
    const answers = await reflect([
      { fileContainingSymbol: 'swap.v1.SwapService.ExecuteSwap' },
      { fileContainingSymbol: 'swap.v1.ExecuteSwapRequest.source_faculty_id' },
      { fileContainingSymbol: 'swap.v1.SWAP_TYPE_ABSORB' },
      { fileContainingSymbol: 'google.rpc.ErrorInfo' },
      { fileContainingSymbol: 'swap.v1.NoSuchThing' },
      { fileByFilename: 'swap_v1.proto' },
      { allExtensionNumbersOfType: 'swap.v1.ExecuteSwapRequest' },
      {
        fileContainingExtension: {
          containingType: 'swap.v1.ExecuteSwapRequest',
          extensionNumber: 100,
        },
      },
    ]);
    expect(answers.map((a) => decode(a)[0]?.name)).toEqual([
      'swap/v1/swap.proto',
      'swap/v1/swap.proto',
      'swap/v1/swap.proto',
      'google/rpc/error_details.proto',
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect(answers.map((a) => a.errorResponse?.errorCode)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      5,
      5,
      undefined,
      5,
    ]);
    expect(answers[4]?.errorResponse?.errorMessage).toContain('swap.v1.NoSuchThing');
    expect(answers[6]?.allExtensionNumbersResponse).toEqual({
      baseTypeName: 'swap.v1.ExecuteSwapRequest',
      extensionNumber: [],
    });
  });

  it('are the same over grpc.reflection.v1alpha', async () => {
    const alpha = new V1AlphaServerReflectionClient(ts.address, credentials.createInsecure());
    try {
      const request = { fileContainingSymbol: 'swap.v1.AuditService' };
      const [v1] = await reflect([request]);
      const [v1alpha] = await reflect([request], alpha);
      expect(v1alpha?.fileDescriptorResponse).toEqual(v1?.fileDescriptorResponse);
      expect(decode(v1alpha)[0]?.name).toBe('swap/v1/audit.proto');
    } finally {
      alpha.close();
    }
  });
});
