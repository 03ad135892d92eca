// The library face: create and start a server from a config, load and validate config files.
export { createServer, buildIssuer, type StsServer, type ServerOptions } from './server/app.js';
export { reloadFromFile, type ReloadResult } from './server/reload.js';
export { loadConfig, parseConfig, parseConfigText, type LoadedConfig, type ParseOptions } from './config/load.js';
export { ConfigError, type ConfigIssue } from './config/errors.js';
export type { Config, ConfigInput } from './config/schema.js';
export { ensureDataDir, dataDir } from './config/init.js';
export { distribution2Block, distribution3Block, zotBlock } from './config/registry-config.js';
export { generateSigningKey, type GeneratedKey, type KeyKind } from './token/generate.js';
export { hashPassword, verifyPassword } from './security/password.js';
export { createLogger, type Logger } from './observability/logger.js';
export type { AuditEvent, AuditSink } from './observability/audit.js';
export type { Authenticator, AuthnContext, AuthnResult, Credentials, Identity, Labels } from './authn/types.js';
export type { Authorizer, AuthzContext, AuthzDecision } from './authz/types.js';
export type { TokenIssuer, IssuedToken, ScopeDecision } from './token/issue.js';
export type { HeaderMode } from './token/signer.js';
export type { RegistryConfigOptions } from './config/registry-config.js';
export { parseScopes, type ResourceScope } from './protocol/scope.js';
export { TokenError, type ErrorCode } from './protocol/errors.js';
