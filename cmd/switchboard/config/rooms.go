package config

import (
	"net/netip"

	"gopkg.in/yaml.v3"
)

// rooms decodes the built-in rooms' WebRTC settings: one ICE address and an
// optional UDP port range, both ends given together (0, 0: any port).
func (d *decoder) rooms(r *Rooms, n *yaml.Node) {
	var minNode, maxNode *yaml.Node
	portsOK := true
	for _, f := range d.section(n, "rooms", []string{"ice_ip", "udp_port_min", "udp_port_max"}) {
		switch f.Name {
		case "ice_ip":
			v, ok := d.StrOrEmpty(f.Value, "rooms.ice_ip")
			if !ok {
				continue
			}
			ip, err := netip.ParseAddr(v)
			if err != nil {
				d.Errorf(f.Value, "rooms.ice_ip: %q is not an IP address; want the address browsers reach this gateway's WebRTC media on, e.g. 127.0.0.1 or 0.0.0.0 for every interface", v)
				continue
			}
			r.ICEIP = ip.WithZone("")
		case "udp_port_min", "udp_port_max":
			p, ok := d.Integer(f.Value, "rooms."+f.Name, "a UDP port 1024–65535, or 0 for any")
			if ok && p != 0 && (p < rtpPortLow || p > rtpPortHigh) {
				d.Errorf(f.Value, "rooms.%s: %d is out of range; want %d–%d, or 0 for any", f.Name, p, rtpPortLow, rtpPortHigh)
				ok = false
			}
			if !ok {
				portsOK = false
				continue
			}
			if f.Name == "udp_port_min" {
				r.UDPPortMin, minNode = p, f.Value
			} else {
				r.UDPPortMax, maxNode = p, f.Value
			}
		}
	}
	switch {
	case !portsOK:
	case r.UDPPortMin != 0 && r.UDPPortMax == 0:
		d.Errorf(minNode, "rooms: udp_port_min without udp_port_max; give both, or neither for any port")
	case r.UDPPortMax != 0 && r.UDPPortMin == 0:
		d.Errorf(maxNode, "rooms: udp_port_max without udp_port_min; give both, or neither for any port")
	case r.UDPPortMin > r.UDPPortMax:
		d.Errorf(minNode, "rooms: udp_port_min %d is above udp_port_max %d; want udp_port_min ≤ udp_port_max", r.UDPPortMin, r.UDPPortMax)
	}
}
