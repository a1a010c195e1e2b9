import { GraphQLError } from 'graphql';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/domain/errors.js';
import { toClientError } from '../../src/graphql/errors.js';
import { PqlError } from '../../src/pql/language/errors.js';

const logged: unknown[] = [];
const log = pino({ level: 'error' }, { write: (line: string) => logged.push(JSON.parse(line)) });
const wrap = (original: Error) => new GraphQLError(original.message, { originalError: original, path: ['field'] });

describe('error mapping', () => {
  it('turns an unexpected error into INTERNAL with the request id, keeping the detail in the log only', () => {
    const err = toClientError(wrap(new TypeError('cannot read properties of undefined (secret detail)')), 'req-1', log);
    expect(err.message).toBe('Internal error; quote request id req-1 when reporting it');
    expect(err.extensions).toEqual({ code: 'INTERNAL', requestId: 'req-1' });
    expect(JSON.stringify(err.toJSON())).not.toContain('secret detail');
    expect(JSON.stringify(err.toJSON())).not.toContain('at ');
    expect(JSON.stringify(logged.at(-1))).toContain('secret detail');
  });

  it('keeps domain codes and their extensions', () => {
    const err = toClientError(wrap(new DomainError('CONFLICT', 'stale', { currentVersion: 3 })), 'r', log);
    expect(err.extensions).toEqual({ code: 'CONFLICT', currentVersion: 3 });
    expect(err.path).toEqual(['field']);
  });

  it('gives PQL errors their position (and expected tokens for syntax errors)', () => {
    const loc = { offset: 4, length: 2, line: 1, column: 5 };
    const syntax = toClientError(wrap(new PqlError('PQL_SYNTAX_ERROR', 'bad', 'a = ', loc, [')'])), 'r', log);
    expect(syntax.extensions).toEqual({ code: 'PQL_SYNTAX_ERROR', pql: { ...loc, expected: [')'] } });
    const type = toClientError(wrap(new PqlError('PQL_TYPE_ERROR', 'bad', 'a = ', loc)), 'r', log);
    expect(type.extensions).toEqual({ code: 'PQL_TYPE_ERROR', pql: loc });
  });

  it('calls request errors without a code BAD_USER_INPUT', () => {
    expect(toClientError(new GraphQLError('Cannot query field "x"'), 'r', log).extensions.code).toBe('BAD_USER_INPUT');
    expect(
      toClientError(new GraphQLError('bad body', { extensions: { code: 'BAD_REQUEST' } }), 'r', log).extensions.code,
    ).toBe('BAD_USER_INPUT');
  });
});
