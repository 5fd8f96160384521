import dns from 'node:dns';
import net from 'node:net';

/**
 * Which hosts the service may connect to on a caller's behalf (image URLs, webhooks): public
 * unicast addresses only. A URL the caller controls must never reach the instance metadata
 * endpoint, a loopback admin port or the VPC. The check runs on the addresses a connection
 * actually uses (see `guardedLookup`), so DNS answers that change between check and connect
 * (rebinding) gain nothing.
 */
export interface AddressPolicy {
  /** Plain http allowed (local runs and tests); production is https only. */
  allowHttp: boolean;
  /** Addresses allowed even though they are not public (tests serve images on 127.0.0.1). */
  allowedAddresses: readonly string[];
}

export const PRODUCTION_ADDRESS_POLICY: AddressPolicy = { allowHttp: false, allowedAddresses: [] };

// IANA special-purpose registries (RFC 6890 and successors): nothing here is a public host.
const NOT_PUBLIC = new net.BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, including the cloud metadata endpoint 169.254.169.254
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) NOT_PUBLIC.addSubnet(prefix, bits, 'ipv4');
for (const [prefix, bits] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b::', 96], // NAT64: would reach IPv4 addresses we cannot see
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: embeds an arbitrary IPv4 address
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) NOT_PUBLIC.addSubnet(prefix, bits, 'ipv6');
// (IPv4-mapped IPv6 addresses, ::ffff:a.b.c.d, are matched against the IPv4 rules by BlockList.)

/** A refused destination: the caller's URL, not our failure. */
export class AddressRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddressRefusedError';
  }
}

export function isPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  return !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export function checkAddress(address: string, policy: AddressPolicy): void {
  if (policy.allowedAddresses.includes(address) || isPublicAddress(address)) return;
  throw new AddressRefusedError(`${address} is not a public address`);
}

/** Scheme and literal-address checks on a URL; host names are checked when they resolve. */
export function checkUrl(raw: string | URL, policy: AddressPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AddressRefusedError(`not a URL: ${String(raw).slice(0, 100)}`);
  }
  const schemes = policy.allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) throw new AddressRefusedError(`${url.protocol} URLs are not allowed (${schemes.join(' or ')} only)`);
  if (url.username || url.password) throw new AddressRefusedError('URLs with credentials are not allowed');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host)) checkAddress(host, policy);
  return url;
}

/** Resolves a URL's host and checks every address it resolves to (for checks ahead of time, e.g. a webhook at creation). */
export async function checkUrlResolves(raw: string, policy: AddressPolicy): Promise<URL> {
  const url = checkUrl(raw, policy);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host)) return url;
  let addresses: dns.LookupAddress[];
  try {
    addresses = await dns.promises.lookup(host, { all: true });
  } catch (e) {
    throw new AddressRefusedError(`cannot resolve ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  for (const a of addresses) checkAddress(a.address, policy);
  return url;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request / net.connect that refuses the connection when any address the name
 * resolves to is not allowed: the check and the connect use the same answer.
 */
export function guardedLookup(policy: AddressPolicy) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      try {
        for (const a of addresses) checkAddress(a.address, policy);
      } catch (e) {
        return callback(e as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
}

/**
 * ANOLE_ALLOW_HTTP_URLS=1 allows plain http (local runs); ANOLE_ALLOWED_ADDRESSES lists non-public
 * addresses to allow anyway (comma-separated, e.g. 127.0.0.1 to fetch from a local server).
 * Neither is set in production.
 */
export function addressPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): AddressPolicy {
  return {
    allowHttp: env.ANOLE_ALLOW_HTTP_URLS === '1',
    allowedAddresses: (env.ANOLE_ALLOWED_ADDRESSES ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter((a) => a.length > 0),
  };
}
