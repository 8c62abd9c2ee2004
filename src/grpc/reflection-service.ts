import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createFileRegistry, type DescFile, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from '@bufbuild/protobuf/wkt';
import { type Server, type ServerDuplexStream, status } from '@grpc/grpc-js';
import {
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  type ServerReflectionServer as V1ServerReflectionServer,
  ServerReflectionService as V1ServerReflectionService,
} from '../generated/grpc/reflection/v1/reflection';
import {
  type ServerReflectionServer as V1AlphaServerReflectionServer,
  ServerReflectionService as V1AlphaServerReflectionService,
} from '../generated/grpc/reflection/v1alpha/reflection';

/**
 * The FileDescriptorSet that `npm run proto` builds with buf from proto/,
 * imports and comments included. src/grpc and dist/grpc sit at the same depth,
 * and the build copies it next to the compiled code, so this finds it from both.
 */
export const DESCRIPTOR_SET_FILE = path.resolve(__dirname, '../generated/descriptor-set.binpb');

/** The names of both reflection services; a server that serves reflection serves both. */
export const REFLECTION_SERVICE_NAMES = [
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
];

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) over the contract's
 * real descriptors: true file names, declared imports, proto field names with
 * their json_name, and comments. Clients (buf curl, grpcurl, Postman) need no
 * local copy of proto/.
 *
 * Built from buf's FileDescriptorSet rather than from proto-loader, whose
 * package definitions merge files by package, drop imports and camelCase field
 * names, which real clients then refuse.
 */
export class ReflectionService {
  private readonly files = new Map<string, DescFile>();
  /** Each file's FileDescriptorProto, serialized once. */
  private readonly encoded = new Map<DescFile, Buffer>();
  /** Every fully qualified symbol (package.Type, package.Service.Method, …) to its file. */
  private readonly symbols = new Map<string, DescFile>();
  /** The fully qualified names of every message, nested ones too. */
  private readonly messages = new Set<string>();
  /** Extended message → extension field number → the file declaring the extension. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly services: string[];

  /**
   * @param descriptorSet a serialized google.protobuf.FileDescriptorSet that
   *   holds every file's imports; it is checked strictly (a missing import or
   *   an unresolvable type throws).
   * @param servedServices the services the server answers, which reflection
   *   lists; each must be described in the set.
   */
  constructor(descriptorSet: Uint8Array, servedServices: readonly string[]) {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet));
    for (const file of registry.files) {
      this.files.set(file.proto.name, file);
      this.encoded.set(file, Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)));
      this.index(file);
    }
    const undescribed = servedServices.filter((name) => !registry.getService(name));
    if (undescribed.length > 0) {
      throw new Error(
        `served but not in the descriptor set: ${undescribed.join(', ')}; run npm run proto`,
      );
    }
    this.services = [...new Set(servedServices)].sort();
  }

  /** Reads the descriptor set `npm run proto` generated. */
  static fromGeneratedDescriptors(servedServices: readonly string[]): ReflectionService {
    return new ReflectionService(readFileSync(DESCRIPTOR_SET_FILE), servedServices);
  }

  /** Adds grpc.reflection.v1 and v1alpha (the same protocol under two names) to `server`. */
  addToServer(server: Pick<Server, 'addService'>): void {
    const v1: V1ServerReflectionServer = { serverReflectionInfo: (call) => this.converse(call) };
    const v1alpha: V1AlphaServerReflectionServer = {
      serverReflectionInfo: (call) => this.converse(call),
    };
    server.addService(V1ServerReflectionService, v1);
    server.addService(V1AlphaServerReflectionService, v1alpha);
  }

  /** Answers each request on the stream in order, and ends when the client does. */
  private converse(call: ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) {
    call.on('data', (request: ServerReflectionRequest) => call.write(this.answer(request)));
    call.on('end', () => call.end());
    // A client that goes away cancels the stream; there is nothing to clean up.
    call.on('error', () => undefined);
  }

  /** The response to one request on the stream. */
  answer(request: ServerReflectionRequest): ServerReflectionResponse {
    const response: ServerReflectionResponse = {
      validHost: request.host,
      originalRequest: request,
    };
    if (request.listServices !== undefined) {
      return {
        ...response,
        listServicesResponse: { service: this.services.map((name) => ({ name })) },
      };
    }
    if (request.fileByFilename !== undefined) {
      const file = this.files.get(request.fileByFilename);
      return file
        ? { ...response, fileDescriptorResponse: this.withImports(file) }
        : notFound(response, `no file named ${JSON.stringify(request.fileByFilename)}`);
    }
    if (request.fileContainingSymbol !== undefined) {
      const file = this.symbols.get(request.fileContainingSymbol);
      return file
        ? { ...response, fileDescriptorResponse: this.withImports(file) }
        : notFound(response, `no symbol named ${JSON.stringify(request.fileContainingSymbol)}`);
    }
    if (request.fileContainingExtension !== undefined) {
      const { containingType, extensionNumber } = request.fileContainingExtension;
      const file = this.extensions.get(containingType)?.get(extensionNumber);
      return file
        ? { ...response, fileDescriptorResponse: this.withImports(file) }
        : notFound(
            response,
            `no extension ${extensionNumber} of ${JSON.stringify(containingType)}`,
          );
    }
    if (request.allExtensionNumbersOfType !== undefined) {
      const type = request.allExtensionNumbersOfType;
      if (!this.messages.has(type)) {
        return notFound(response, `no message named ${JSON.stringify(type)}`);
      }
      return {
        ...response,
        allExtensionNumbersResponse: {
          baseTypeName: type,
          extensionNumber: [...(this.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b),
        },
      };
    }
    return {
      ...response,
      errorResponse: {
        errorCode: status.INVALID_ARGUMENT,
        errorMessage:
          'set one of list_services, file_by_filename, file_containing_symbol, file_containing_extension, all_extension_numbers_of_type',
      },
    };
  }

  /** The file first, then every file it imports, directly or not, each once. */
  private withImports(file: DescFile): { fileDescriptorProto: Buffer[] } {
    const seen = new Set<DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const dependency of f.dependencies) visit(dependency);
    };
    visit(file);
    return { fileDescriptorProto: [...seen].map((f) => this.encoded.get(f) ?? Buffer.alloc(0)) };
  }

  /** Records every symbol the file declares, under the names protoc gives them. */
  private index(file: DescFile): void {
    const proto = file.proto;
    const prefix = proto.package ? `${proto.package}.` : '';
    const add = (name: string) => this.symbols.set(name, file);
    const addExtension = (name: string, extendee: string, number: number) => {
      add(name);
      const type = extendee.replace(/^\./, '');
      const byNumber = this.extensions.get(type) ?? new Map<number, DescFile>();
      byNumber.set(number, file);
      this.extensions.set(type, byNumber);
    };
    // Enum values are scoped like their enum's siblings (protobuf's C++ scoping).
    const addEnum = (e: EnumDescriptorProto, scope: string) => {
      add(scope + e.name);
      for (const value of e.value) add(scope + value.name);
    };
    const addMessage = (m: DescriptorProto, scope: string) => {
      const name = scope + m.name;
      add(name);
      this.messages.add(name);
      for (const field of m.field) add(`${name}.${field.name}`);
      for (const oneof of m.oneofDecl) add(`${name}.${oneof.name}`);
      for (const x of m.extension) addExtension(`${name}.${x.name}`, x.extendee, x.number);
      for (const nested of m.nestedType) addMessage(nested, `${name}.`);
      for (const e of m.enumType) addEnum(e, `${name}.`);
    };
    for (const m of proto.messageType) addMessage(m, prefix);
    for (const e of proto.enumType) addEnum(e, prefix);
    for (const x of proto.extension) addExtension(prefix + x.name, x.extendee, x.number);
    for (const service of proto.service) {
      add(prefix + service.name);
      for (const method of service.method) add(`${prefix}${service.name}.${method.name}`);
    }
  }
}

function notFound(response: ServerReflectionResponse, message: string): ServerReflectionResponse {
  return { ...response, errorResponse: { errorCode: status.NOT_FOUND, errorMessage: message } };
}
