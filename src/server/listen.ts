export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * docker_auth's `addr`: `host:port`, `:port` (every interface) or `[v6]:port`.
 */
export function parseListenAddress(addr: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr.trim());
  if (!match) throw new Error(`server.addr ${JSON.stringify(addr)} is not host:port`);
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`server.addr ${JSON.stringify(addr)}: port out of range`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '::' : host, port };
}
