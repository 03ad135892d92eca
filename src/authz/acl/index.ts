export { AclCompileError, compileAcl } from './engine.js';
export type { AclDecision, AclMatch, AclRequest, AclRule, CompiledAcl } from './engine.js';
