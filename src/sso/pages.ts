import { createHash } from 'node:crypto';
import type { SsoStatus } from './errors.js';

/**
 * The HTML of the login pages: server-rendered, no external asset, one small inline stylesheet and
 * one inline script (the copy button, the only thing that needs JavaScript). Links are relative,
 * so the pages work under any path prefix, a reverse proxy's included. Every value is escaped.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

const STYLE = `
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#f6f8fa;--card:#fff;--line:#d1d9e0;--accent:#0550ae;--on-accent:#fff;--bad:#b3261e}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9ba7b4;--bg:#0d1117;--card:#151b23;--line:#3d444d;--accent:#4493f8;--on-accent:#0d1117;--bad:#ff7b72}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
main{max-width:36rem;margin:3rem auto;padding:2rem;background:var(--card);border:1px solid var(--line);border-radius:12px}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 .5rem}
h2{font-size:1.125rem;margin:1.75rem 0 .5rem}
p{margin:.5rem 0}
.muted{color:var(--muted)}
.providers{list-style:none;margin:1.5rem 0 0;padding:0;display:grid;gap:.75rem}
.button,button{display:block;width:100%;padding:.7rem 1rem;border:1px solid transparent;border-radius:8px;background:var(--accent);color:var(--on-accent);font:inherit;font-weight:600;text-align:center;text-decoration:none;cursor:pointer}
.secondary{background:transparent;color:var(--fg);border-color:var(--line)}
a:focus-visible,button:focus-visible,input:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
a{color:var(--accent)}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
.field{display:flex;gap:.5rem}
.field button{width:auto;flex:none}
input,pre{font:14px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);color:var(--fg);border:1px solid var(--line);border-radius:6px}
input{flex:1;min-width:0;padding:.6rem}
pre{margin:.5rem 0;padding:.75rem;overflow-x:auto;white-space:pre}
.notice{margin:1rem 0;padding:.75rem 1rem;border-left:4px solid var(--accent);background:var(--bg);border-radius:4px}
.notice.bad{border-left-color:var(--bad)}
.notice form{margin-top:.5rem}
.notice button{width:auto}
form.signout{margin-top:1.75rem}
#copy-status{min-height:1.5em}
time,p code{white-space:nowrap}
`;

// Shows the copy button (hidden without JavaScript) and copies the field it names.
const COPY_SCRIPT = `for (const button of document.querySelectorAll('button[data-copy]')) {
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById('copy-status');
  button.hidden = false;
  button.addEventListener('click', () => {
    field.select();
    const done = () => { status.textContent = 'Copied to the clipboard.'; };
    const fallback = () => { if (document.execCommand('copy')) done(); else status.textContent = 'Select the token and copy it.'; };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(done, fallback);
    else fallback();
  });
}`;

/** The page's Content-Security-Policy: nothing but the inline style and this one script. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "style-src 'unsafe-inline'",
  `script-src 'sha256-${createHash('sha256').update(COPY_SCRIPT).digest('base64')}'`,
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

function layout(title: string, body: string, script = false): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
${script ? `<script>${COPY_SCRIPT}</script>\n` : ''}</body>
</html>
`;
}

function signOutForm(action: string, csrf: string, className: string): string {
  return `<form class="${className}" method="post" action="${escapeHtml(action)}">
<input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<button class="secondary" type="submit">Sign out</button>
</form>`;
}

export interface LoginPageInput {
  providers: readonly { displayName: string; href: string }[];
  registry: string;
  session?: { account: string; providerName: string; csrf: string; logoutAction: string };
}

export function loginPage(input: LoginPageInput): string {
  const signedIn = input.session
    ? `<div class="notice" role="status">
<p>You are signed in as <strong>${escapeHtml(input.session.account)}</strong> with ${escapeHtml(input.session.providerName)}. Sign in again for another token.</p>
${signOutForm(input.session.logoutAction, input.session.csrf, 'inline')}
</div>\n`
    : '';
  const buttons = input.providers
    .map((p) => `<li><a class="button" href="${escapeHtml(p.href)}">Sign in with ${escapeHtml(p.displayName)}</a></li>`)
    .join('\n');
  return layout(
    'Sign in',
    `<h1>Sign in</h1>
<p class="muted">Get an access token for <strong>${escapeHtml(input.registry)}</strong>, to use as the password of <code>docker login</code>.</p>
${signedIn}<nav aria-label="Sign-in providers">
<ul class="providers">
${buttons}
</ul>
</nav>`,
  );
}

export interface ResultPageInput {
  account: string;
  providerName: string;
  token: string;
  tokenName: string;
  /** Epoch ms, or null for a token that never expires. */
  expiresAt: number | null;
  registry: string;
  logoutAction: string;
  csrf: string;
}

const formatTime = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

export function resultPage(input: ResultPageInput): string {
  const command = `docker login ${input.registry} -u ${input.account} --password-stdin`;
  const expiry = input.expiresAt === null ? 'It does not expire.' : `It expires on <time datetime="${new Date(input.expiresAt).toISOString()}">${formatTime(input.expiresAt)}</time>.`;
  return layout(
    `Signed in as ${input.account}`,
    `<h1>Signed in as ${escapeHtml(input.account)}</h1>
<p class="muted">with ${escapeHtml(input.providerName)}</p>
<h2>Your access token</h2>
<p>It is shown only this once: copy it now. ${expiry}</p>
<label for="token">Access token <span class="muted">(${escapeHtml(input.tokenName)})</span></label>
<div class="field">
<input id="token" name="token" type="text" value="${escapeHtml(input.token)}" readonly autocomplete="off" spellcheck="false" aria-describedby="copy-status">
<button type="button" data-copy="token" hidden>Copy</button>
</div>
<p id="copy-status" role="status" aria-live="polite"></p>
<h2>Log in to the registry</h2>
<p>Run this command, paste the token, press Enter, then Ctrl-D:</p>
<pre id="command"><code>${escapeHtml(command)}</code></pre>
<p class="muted">podman, skopeo and helm take the same arguments. Signing out here does not revoke the token; an administrator can (<code>sts-docker-auth tokens revoke</code>).</p>
${signOutForm(input.logoutAction, input.csrf, 'signout')}`,
    true,
  );
}

const TITLES: Record<SsoStatus | 500, string> = {
  400: 'Sign-in failed',
  403: 'Access denied',
  404: 'Not found',
  500: 'Something went wrong',
  502: 'The sign-in provider failed',
  503: 'Sign-in is unavailable',
};

export function errorPage(status: SsoStatus | 500, message: string, loginHref: string): string {
  const title = TITLES[status];
  return layout(
    title,
    `<h1>${escapeHtml(title)}</h1>
<div class="notice bad" role="alert"><p>${escapeHtml(message)}</p></div>
<p><a class="button secondary" href="${escapeHtml(loginHref)}">Back to sign-in</a></p>`,
  );
}
