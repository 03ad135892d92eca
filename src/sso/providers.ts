import { displayNameOf } from './claims.js';
import { GitHubProvider } from './github.js';
import { OidcProvider } from './oidc.js';
import type { PreparedSso } from './prepare.js';
import type { SsoProvider } from './provider.js';

/** The configured providers by id, each with its client secret. Nothing is fetched yet. */
export function createProviders(sso: PreparedSso): Map<string, SsoProvider> {
  const providers = new Map<string, SsoProvider>();
  for (const config of sso.settings.providers) {
    const secret = sso.clientSecrets.get(config.id);
    if (secret === undefined) throw new Error(`sso provider ${config.id} has no client secret`);
    const options = { secret, timeoutSeconds: sso.settings.timeout, displayName: displayNameOf(config) };
    providers.set(config.id, config.type === 'github' ? new GitHubProvider(config, options) : new OidcProvider(config, options));
  }
  return providers;
}

