import type { FastifyInstance } from 'fastify';

/**
 * A browser made of plain HTTP for the sign-in tests: a cookie jar per host, redirects followed by
 * hand, forms posted. Requests to `sts.origin` go to our app through `inject` (no port needed, so
 * the redirect URL can be written into the config first); anything else is a real fetch to a
 * provider on loopback. Cookie paths and expiry are kept; Secure and SameSite are not modelled.
 */

export interface BrowserResponse {
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The absolute redirect target, for a 3xx. */
  location: string | undefined;
  /** The Set-Cookie lines of this response. */
  setCookies: string[];
  body: string;
}

interface StoredCookie {
  value: string;
  path: string;
}

export class HttpBrowser {
  /** host → cookie name → cookie */
  readonly jar = new Map<string, Map<string, StoredCookie>>();

  constructor(private readonly sts: { origin: string; app: FastifyInstance }) {}

  private cookieHeader(url: URL): string | undefined {
    const cookies = [...(this.jar.get(url.host) ?? new Map<string, StoredCookie>())].filter(
      ([, c]) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
    );
    return cookies.length > 0 ? cookies.map(([name, c]) => `${name}=${c.value}`).join('; ') : undefined;
  }

  private remember(url: URL, lines: string[]): void {
    const cookies = this.jar.get(url.host) ?? new Map<string, StoredCookie>();
    this.jar.set(url.host, cookies);
    for (const line of lines) {
      const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const attr = (key: string) => attributes.find((a) => a.toLowerCase().startsWith(`${key}=`))?.slice(key.length + 1);
      const maxAge = attr('max-age');
      const expires = attr('expires');
      const gone = value === '' || (maxAge !== undefined && Number(maxAge) <= 0) || (expires !== undefined && Date.parse(expires) <= Date.now());
      if (gone) cookies.delete(name);
      else cookies.set(name, { value, path: attr('path') ?? '/' });
    }
  }

  /** The value of a cookie the browser holds for a host. */
  cookie(origin: string, name: string): string | undefined {
    return this.jar.get(new URL(origin).host)?.get(name)?.value;
  }

  setCookie(origin: string, name: string, value: string, path = '/'): void {
    const host = new URL(origin).host;
    const cookies = this.jar.get(host) ?? new Map<string, StoredCookie>();
    cookies.set(name, { value, path });
    this.jar.set(host, cookies);
  }

  async request(method: 'GET' | 'POST', target: string, form?: Record<string, string>): Promise<BrowserResponse> {
    const url = new URL(target);
    const headers: Record<string, string> = {};
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    const body = form ? new URLSearchParams(form).toString() : undefined;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    let status: number;
    let responseHeaders: Record<string, string | string[] | undefined>;
    let text: string;
    let setCookies: string[];
    if (url.origin === this.sts.origin) {
      const res = await this.sts.app.inject({ method, url: `${url.pathname}${url.search}`, headers: { ...headers, host: url.host }, ...(body !== undefined ? { payload: body } : {}) });
      status = res.statusCode;
      responseHeaders = res.headers as Record<string, string | string[] | undefined>;
      text = res.body;
      const raw = res.headers['set-cookie'];
      setCookies = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    } else {
      const res = await fetch(url, { method, headers, redirect: 'manual', ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(10_000) });
      status = res.status;
      responseHeaders = Object.fromEntries(res.headers);
      text = await res.text();
      setCookies = res.headers.getSetCookie();
    }
    this.remember(url, setCookies);
    const location = typeof responseHeaders.location === 'string' ? new URL(responseHeaders.location, url).href : undefined;
    return { url: url.href, status, headers: responseHeaders, location, setCookies, body: text };
  }

  /** GETs `target` and follows redirects; returns every response, the last one last. */
  async follow(target: string, limit = 15): Promise<BrowserResponse[]> {
    return this.followFrom(await this.request('GET', target), limit);
  }

  async followFrom(first: BrowserResponse, limit = 15): Promise<BrowserResponse[]> {
    const chain = [first];
    let current = first;
    while (current.status >= 300 && current.status < 400 && current.location) {
      if (chain.length > limit) throw new Error(`more than ${limit} redirects: ${chain.map((r) => r.url).join(' -> ')}`);
      current = await this.request('GET', current.location);
      chain.push(current);
    }
    return chain;
  }
}

/** The value of an attribute of the first element matching `tagPattern`, from HTML. */
export function attributeOf(html: string, tagPattern: RegExp, attribute: string): string | undefined {
  const tag = tagPattern.exec(html)?.[0];
  const match = tag ? new RegExp(`\\s${attribute}="([^"]*)"`).exec(tag) : null;
  return match?.[1]?.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}
