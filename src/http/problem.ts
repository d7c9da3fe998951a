import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type AppError, type ErrorCode, isAppError } from '../platform/errors/app-error.ts';
import type { ErrorTable } from '../platform/context/context-module.ts';
import { translatePgError, sqlState } from '../platform/db/pg-errors.ts';
import { PLATFORM_ERRORS } from './error-statuses.ts';

/** RFC 9457 problem details, plus stratum's stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}): Problem {
  return { type: `urn:stratum:error:${code}`, title: TITLES[status] ?? 'Error', status, code, detail, ...extra };
}

const problemCodes = new WeakMap<FastifyReply, string>();

/** The stable code of the problem this reply answered with, if it did. */
export function problemCodeOf(reply: FastifyReply): string | undefined {
  return problemCodes.get(reply);
}

export function sendProblem(reply: FastifyReply, p: Problem, retryAfterSeconds?: number): FastifyReply {
  problemCodes.set(reply, p.code);
  if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
  return reply.code(p.status).type('application/problem+json').send(p);
}

/** An edge failure's code and status, the status from the one table. */
const edgeFailure = (code: ErrorCode, detail: string) => ({ status: PLATFORM_ERRORS[code].status, code, detail });

function fromFastifyError(error: FastifyError): { status: number; code: string; detail: string } | undefined {
  if (error.validation) {
    const first = error.validation[0];
    const field = [error.validationContext, first?.instancePath?.replace(/^\//, '').replace(/\//g, '.')]
      .filter(Boolean)
      .join('.');
    const missing = first?.params as { missingProperty?: string; additionalProperty?: string } | undefined;
    const name = missing?.missingProperty
      ? `${field ? `${field}.` : ''}${missing.missingProperty}`
      : missing?.additionalProperty
        ? `${field ? `${field}.` : ''}${missing.additionalProperty}`
        : field;
    const what = missing?.additionalProperty
      ? 'is not a known field'
      : missing?.missingProperty
        ? 'is required'
        : (first?.message ?? 'is invalid');
    return edgeFailure('REQUEST.INVALID', `${name} ${what}`);
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return edgeFailure('REQUEST.TOO_LARGE', 'the request body is larger than the limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return edgeFailure('REQUEST.UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return edgeFailure('REQUEST.INVALID', 'the body is not valid JSON');
    default:
      break;
  }
  if (error instanceof SyntaxError || (error.statusCode && error.statusCode >= 400 && error.statusCode < 500)) {
    return { status: error.statusCode ?? 400, code: 'REQUEST.INVALID', detail: error.message };
  }
  return undefined;
}

/**
 * The one error handler: every failure leaves as application/problem+json with a stable code, its status from
 * `errors` (the merged table of the platform and the contexts; a code missing from it answers 500).
 */
export function installProblemHandlers(app: FastifyInstance, errors: ErrorTable = PLATFORM_ERRORS): void {
  app.setErrorHandler((error: FastifyError | AppError, request: FastifyRequest, reply: FastifyReply) => {
    const edge = isAppError(error) ? undefined : fromFastifyError(error as FastifyError);
    if (edge) return sendProblem(reply, problem(edge.status, edge.code, edge.detail));
    const appError = isAppError(error)
      ? error
      : sqlState(error) || (error as { code?: string }).code
        ? translatePgError(error)
        : undefined;
    if (!appError) {
      request.log.error({ err: error }, 'unhandled error');
      return sendProblem(
        reply,
        problem(PLATFORM_ERRORS.INTERNAL.status, 'INTERNAL', 'an unexpected error occurred; it has been logged'),
      );
    }
    const entry = errors[appError.code];
    const status = entry?.status ?? 500;
    if (status >= 500) request.log.error({ err: appError, cause: appError.cause }, appError.message);
    const detail =
      status >= 500 && appError.code === 'DB.ERROR'
        ? 'the database reported an error; it has been logged'
        : appError.message;
    return sendProblem(
      reply,
      problem(status, appError.code, detail, appError.details ? { details: appError.details } : {}),
      entry?.retryAfterSeconds,
    );
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(
        PLATFORM_ERRORS['RESOURCE.NOT_FOUND'].status,
        'RESOURCE.NOT_FOUND',
        `no route for ${request.method} ${request.url.split('?')[0]}`,
      ),
    ),
  );
}
