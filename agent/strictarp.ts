// kube-proxy in IPVS mode puts every LoadBalancer and external IP on its dummy interface
// kube-ipvs0. Unless kube-proxy runs with strictARP (net.ipv4.conf.all.arp_ignore=1 and
// arp_announce=2), every node then answers ARP for those IPs and the L2 announcement is
// meaningless. This decides whether to warn.

export const IPVS_INTERFACE = 'kube-ipvs0';

export interface StrictArpInput {
  /** IPv4 addresses on kube-ipvs0, or null when there is no such interface. */
  ipvsAddresses: string[] | null;
  /** IPv4 addresses the agent holds for claims. */
  held: string[];
  /** Effective net.ipv4.conf.*.arp_ignore and arp_announce (null when unreadable). */
  arpIgnore: number | null;
  arpAnnounce: number | null;
}

export type StrictArpResult = { missing: false } | { missing: true; addresses: string[]; message: string };

export function strictArpCheck(input: StrictArpInput): StrictArpResult {
  if (!input.ipvsAddresses) return { missing: false };
  const onIpvs = new Set(input.ipvsAddresses);
  const shared = input.held.filter((ip) => onIpvs.has(ip)).sort();
  if (shared.length === 0) return { missing: false };
  const strict = (input.arpIgnore ?? 0) >= 1 && (input.arpAnnounce ?? 0) >= 2;
  if (strict) return { missing: false };
  return {
    missing: true,
    addresses: shared,
    message:
      `${IPVS_INTERFACE} holds ${shared.join(', ')} and strict ARP is off ` +
      `(arp_ignore=${input.arpIgnore ?? '?'}, arp_announce=${input.arpAnnounce ?? '?'}): every node answers ARP for them; ` +
      'set strictARP: true in the kube-proxy configuration',
  };
}
