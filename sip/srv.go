package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// resolveTargets turns a trunk's host into the addresses to try in order (RFC 3263 4.2):
// an IP is itself; a name with a port is its A records; a name without one is looked up by
// SRV (_sip._udp / _sip._tcp), targets by priority and weight, each expanded to its A
// records, and falls back to the name's A records on 5060 when there is no SRV record.
func resolveTargets(ctx context.Context, r *net.Resolver, host string, port int, transport string) ([]netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if port == 0 {
			port = 5060
		}
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), uint16(port))}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if port != 0 {
		return lookupA(ctx, r, host, port)
	}
	proto := strings.ToLower(transport)
	if proto == "" {
		proto = "udp"
	}
	_, srvs, err := r.LookupSRV(ctx, "sip", proto, host)
	if err != nil || len(srvs) == 0 {
		return lookupA(ctx, r, host, 5060)
	}
	var out []netip.AddrPort
	var lastErr error
	for _, s := range srvs { // net sorts by priority, randomised by weight (RFC 2782)
		if s.Target == "." {
			continue // "service decidedly not available"
		}
		as, err := lookupA(ctx, r, strings.TrimSuffix(s.Target, "."), int(s.Port))
		if err != nil {
			lastErr = err
			continue
		}
		out = append(out, as...)
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = fmt.Errorf("sip: %s: SRV lists no usable target", host)
		}
		return nil, lastErr
	}
	return out, nil
}

func lookupA(ctx context.Context, r *net.Resolver, host string, port int) ([]netip.AddrPort, error) {
	ips, err := r.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return nil, fmt.Errorf("sip: resolve %s: %w", host, err)
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	return out, nil
}
