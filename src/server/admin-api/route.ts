import type { FastifyRequest, FastifySchema, FastifySchemaCompiler, HTTPMethods } from 'fastify';
import { z } from 'zod';
import { ApiError, ERROR_DESCRIPTIONS, errorSchema, invalidInput } from './errors.js';

/** Who calls: the admin access token that authenticated the request. */
export interface Caller {
  tokenId: string;
  user: string;
  /** For the change log: `api:<token id>`. */
  actor: string;
}

type Part = 'params' | 'querystring' | 'body';
type SuccessStatus = 200 | 201 | 204;

/** One route: its documentation, its input schemas (zod) and its handler on validated input. */
export interface RouteSpec<P, Q, B> {
  method: Extract<HTTPMethods, 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'>;
  /** Below `<path_prefix>/api/v1`. */
  path: string;
  operationId: string;
  tag: string;
  summary: string;
  description?: string;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  status: SuccessStatus;
  /** The success body's schema; none for 204. */
  response?: z.ZodType;
  /** Error statuses this route answers besides those of every route (400 when it takes a query or a body, 401, 403, 503). */
  errors?: readonly (404 | 409)[];
  handler(input: { params: P; query: Q; body: B; caller: Caller; request: FastifyRequest }): Promise<unknown>;
}

/** A route with its types erased, ready to be registered. */
export interface AdminRoute {
  method: RouteSpec<unknown, unknown, unknown>['method'];
  path: string;
  status: SuccessStatus;
  schema: FastifySchema & Record<string, unknown>;
  validatorCompiler: FastifySchemaCompiler<unknown>;
  run(request: FastifyRequest, caller: Caller): Promise<unknown>;
}

/** Schemas shared by name (`User`, `Labels`, ...): components of the OpenAPI document. */
const COMPONENTS = new Map<unknown, string>();

/** Names a schema: wherever it appears, its JSON Schema is a `$ref` to the shared one. */
export function component<T extends z.ZodType>(id: string, schema: T): T {
  COMPONENTS.set(schema, id);
  return schema;
}

/** JSON Schema (OpenAPI 3.0 flavour) of a zod schema, for Fastify's serializer and the document. */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output', self?: string): Record<string, unknown> {
  const json = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io,
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema: out }) => {
      const id = COMPONENTS.get(zodSchema);
      if (id === undefined || id === self) return;
      const target = out as Record<string, unknown>;
      for (const key of Object.keys(target)) delete target[key];
      target.$ref = `${id}#`;
    },
  }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

/** The named schemas, for `app.addSchema`; their requests and answers refer to them by `$id`. */
export function componentSchemas(): Array<Record<string, unknown>> {
  return [...COMPONENTS].map(([schema, id]) => ({ $id: id, ...jsonSchema(schema as z.ZodType, 'output', id) }));
}

const ERROR_SCHEMA_ID = 'AdminApiError';
component(ERROR_SCHEMA_ID, errorSchema);

const ERROR_HEADERS: Record<number, Record<string, { type: 'string'; description: string }>> = {
  401: { 'WWW-Authenticate': { type: 'string', description: 'Bearer realm="sts-docker-auth admin API"' } },
  403: { 'WWW-Authenticate': { type: 'string', description: 'Bearer realm="sts-docker-auth admin API", error="insufficient_scope", scope="admin"' } },
  503: { 'Retry-After': { type: 'string', description: 'seconds to wait before retrying' } },
};

export function defineRoute<P = undefined, Q = undefined, B = undefined>(spec: RouteSpec<P, Q, B>): AdminRoute {
  const parts: Partial<Record<Part, z.ZodType>> = { params: spec.params, querystring: spec.query, body: spec.body };
  const schema: FastifySchema & Record<string, unknown> = {
    operationId: spec.operationId,
    tags: [spec.tag],
    summary: spec.summary,
    ...(spec.description === undefined ? {} : { description: spec.description }),
  };
  for (const part of ['params', 'querystring', 'body'] as const) {
    const zod = parts[part];
    if (zod) schema[part] = jsonSchema(zod, 'input');
  }
  // Path parameters are plain strings: only a query or a body can be refused as such.
  const takesInput = spec.query !== undefined || spec.body !== undefined;
  const statuses = [...(takesInput ? [400] : []), 401, 403, ...(spec.errors ?? []), 503].sort((a, b) => a - b);
  const response: Record<string, unknown> = {};
  if (spec.response) {
    const json = jsonSchema(spec.response, 'output');
    const label = spec.status === 201 ? 'Created' : 'OK';
    // The document's response description: beside a $ref, or in swagger's own keyword, so it does
    // not become the description of the body's schema.
    response[spec.status] = '$ref' in json ? { ...json, description: label } : { ...json, 'x-response-description': label };
  } else {
    response[spec.status] = { type: 'null', description: 'Done; no content' };
  }
  for (const status of statuses) {
    const headers = ERROR_HEADERS[status];
    response[status] = { $ref: `${ERROR_SCHEMA_ID}#`, description: ERROR_DESCRIPTIONS[status], ...(headers ? { headers } : {}) };
  }
  schema.response = response;

  return {
    method: spec.method,
    path: spec.path,
    status: spec.status,
    schema,
    // Validation by the zod schemas themselves: exact types (no coercion of bodies), and an unknown
    // field is an error, not silently dropped as Fastify's default Ajv settings would.
    validatorCompiler: ({ httpPart }) => {
      const part = httpPart as Part;
      const zod = parts[part];
      return (data: unknown) => {
        if (!zod) return { value: data };
        if (part === 'body' && (data === null || data === undefined)) {
          return { error: new ApiError('INVALID_REQUEST', 'a JSON body is required (Content-Type: application/json)') };
        }
        const parsed = zod.safeParse(data ?? {});
        return parsed.success ? { value: parsed.data } : { error: invalidInput(part, parsed.error) };
      };
    },
    run(request, caller) {
      return spec.handler({
        params: request.params as P,
        query: request.query as Q,
        body: request.body as B,
        caller,
        request,
      });
    },
  };
}
