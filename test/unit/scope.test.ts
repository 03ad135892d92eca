import { describe, expect, it } from 'vitest';
import { TokenError } from '../../src/protocol/errors.js';
import { formatScopes, parseResourceScope, parseScopes } from '../../src/protocol/scope.js';

describe('parseResourceScope: valid', () => {
  it.each([
    // plain repositories
    ['repository:team/app:pull', { type: 'repository', name: 'team/app', actions: ['pull'] }],
    ['repository:app:pull,push', { type: 'repository', name: 'app', actions: ['pull', 'push'] }],
    ['repository:app:push,pull', { type: 'repository', name: 'app', actions: ['push', 'pull'] }],
    ['repository:a/b/c/d:delete', { type: 'repository', name: 'a/b/c/d', actions: ['delete'] }],
    ['repository:my-app_1.x/sub__dir:pull', { type: 'repository', name: 'my-app_1.x/sub__dir', actions: ['pull'] }],
    ['repository:a--b:pull', { type: 'repository', name: 'a--b', actions: ['pull'] }],
    // host and host:port prefixes: first colon ends the type, last colon starts the actions
    ['repository:localhost:5000/team/app:pull', { type: 'repository', name: 'localhost:5000/team/app', actions: ['pull'] }],
    ['repository:reg.example.com/app:pull', { type: 'repository', name: 'reg.example.com/app', actions: ['pull'] }],
    ['repository:reg.example.com:443/a/b:push', { type: 'repository', name: 'reg.example.com:443/a/b', actions: ['push'] }],
    ['repository:localhost/app:pull', { type: 'repository', name: 'localhost/app', actions: ['pull'] }],
    // resource class, kept apart from the type
    ['repository(plugin):team/app:pull', { type: 'repository', class: 'plugin', name: 'team/app', actions: ['pull'] }],
    // the catalog and `*`
    ['registry:catalog:*', { type: 'registry', name: 'catalog', actions: ['*'] }],
    ['repository:app:*', { type: 'repository', name: 'app', actions: ['*'] }],
    // duplicates inside one scope collapse
    ['repository:app:pull,pull,push', { type: 'repository', name: 'app', actions: ['pull', 'push'] }],
    // vendor actions (Harbor)
    ['repository:app:scanner-pull', { type: 'repository', name: 'app', actions: ['scanner-pull'] }],
  ])('%s', (raw, expected) => {
    expect(parseResourceScope(raw)).toEqual(expected);
  });
});

describe('parseResourceScope: malformed', () => {
  it.each([
    ['no colon at all', 'repository'],
    ['only one colon', 'repository:app'],
    ['empty type', ':app:pull'],
    ['upper-case type', 'Repository:app:pull'],
    ['bad class', 'repository(Plugin):app:pull'],
    ['empty name', 'repository::pull'],
    ['upper-case name', 'repository:Team/app:pull'],
    ['trailing slash', 'repository:team/:pull'],
    ['leading slash', 'repository:/team:pull'],
    ['double slash', 'repository:a//b:pull'],
    ['glob in a requested name', 'repository:team/*:pull'],
    ['control character in name', 'repository:te\u0001am:pull'],
    ['empty actions', 'repository:app:'],
    ['empty action in the list', 'repository:app:pull,'],
    ['upper-case action', 'repository:app:PULL'],
    ['action with a space-like character', 'repository:app:pu\tll'],
    ['name longer than 255', `repository:${'a'.repeat(256)}:pull`],
    ['bad host', 'repository:-bad.com/app:pull'],
    ['bad port', 'repository:localhost:port/app:pull'],
  ])('%s', (_why, raw) => {
    expect(() => parseResourceScope(raw)).toThrow(TokenError);
    try {
      parseResourceScope(raw);
    } catch (err) {
      expect((err as TokenError).code).toBe('INVALID_SCOPE');
    }
  });
});

describe('parseScopes', () => {
  it('returns nothing for no scope, an empty scope, or spaces only (the login case)', () => {
    expect(parseScopes([])).toEqual([]);
    expect(parseScopes([''])).toEqual([]);
    expect(parseScopes(['  '])).toEqual([]);
  });

  it('splits a value on spaces (ggcr forwards a challenge verbatim)', () => {
    expect(parseScopes(['repository:a:push,pull repository:b:pull'])).toEqual([
      { type: 'repository', name: 'a', actions: ['push', 'pull'] },
      { type: 'repository', name: 'b', actions: ['pull'] },
    ]);
  });

  it('merges repeated parameters for one resource, in first-seen order', () => {
    expect(parseScopes(['repository:a:pull', 'repository:b:pull', 'repository:a:pull,push', 'repository:a:pull'])).toEqual([
      { type: 'repository', name: 'a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'b', actions: ['pull'] },
    ]);
  });

  it('treats repository and repository(plugin) as one resource, keeping the class', () => {
    expect(parseScopes(['repository:a:pull', 'repository(plugin):a:push'])).toEqual([
      { type: 'repository', class: 'plugin', name: 'a', actions: ['pull', 'push'] },
    ]);
  });

  it('keeps different types apart', () => {
    expect(parseScopes(['registry:catalog:*', 'repository:catalog:pull'])).toHaveLength(2);
  });

  it('tolerates double spaces between scopes', () => {
    expect(parseScopes(['repository:a:pull  repository:b:pull'])).toHaveLength(2);
  });

  it('refuses an unbounded number of resources', () => {
    const many = Array.from({ length: 65 }, (_, i) => `repository:r${i}:pull`);
    expect(() => parseScopes(many)).toThrow(/more than 64/);
  });

  it('fails the whole request when one scope is malformed', () => {
    expect(() => parseScopes(['repository:a:pull', 'repository:A:pull'])).toThrow(TokenError);
  });
});

describe('formatScopes', () => {
  it('lists granted scopes space-separated and leaves out empty grants', () => {
    expect(
      formatScopes([
        { type: 'repository', name: 'a', actions: ['pull', 'push'] },
        { type: 'repository', name: 'b', actions: [] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
        { type: 'repository', class: 'plugin', name: 'c', actions: ['pull'] },
      ]),
    ).toBe('repository:a:pull,push registry:catalog:* repository(plugin):c:pull');
  });
});
