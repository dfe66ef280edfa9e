package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRooms(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want Rooms
	}{
		{"", Rooms{ICEIP: netip.MustParseAddr("127.0.0.1")}},
		{"rooms:\n", Rooms{ICEIP: netip.MustParseAddr("127.0.0.1")}},
		{"rooms: { udp_port_min: 0, udp_port_max: 0 }\n", Rooms{ICEIP: netip.MustParseAddr("127.0.0.1")}},
		{"rooms: { ice_ip: 10.0.0.5, udp_port_min: 40000, udp_port_max: 40999 }\n",
			Rooms{ICEIP: netip.MustParseAddr("10.0.0.5"), UDPPortMin: 40000, UDPPortMax: 40999}},
		{"rooms: { ice_ip: 0.0.0.0, udp_port_min: 40000, udp_port_max: 40000 }\n",
			Rooms{ICEIP: netip.MustParseAddr("0.0.0.0"), UDPPortMin: 40000, UDPPortMax: 40000}},
	} {
		cfg, err := Parse("c.yaml", []byte(c.yaml), "/etc/sb")
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.yaml, err)
		}
		if cfg.Rooms != c.want {
			t.Errorf("Parse(%q): rooms %+v, want %+v", c.yaml, cfg.Rooms, c.want)
		}
	}
	for _, c := range []struct{ yaml, want string }{
		{"rooms:\n  ice_ip: example.com\n", `c.yaml:2:11: rooms.ice_ip: "example.com" is not an IP address`},
		{"rooms:\n  udp_port_min: 80\n  udp_port_max: 90\n", "c.yaml:2:17: rooms.udp_port_min: 80 is out of range; want 1024–65535, or 0 for any"},
		{"rooms:\n  udp_port_min: 40000\n", "c.yaml:2:17: rooms: udp_port_min without udp_port_max"},
		{"rooms:\n  udp_port_max: 40000\n", "c.yaml:2:17: rooms: udp_port_max without udp_port_min"},
		{"rooms:\n  udp_port_min: 0\n  udp_port_max: 40000\n", "c.yaml:3:17: rooms: udp_port_max without udp_port_min"},
		{"rooms:\n  udp_port_min: 41000\n  udp_port_max: 40000\n", "c.yaml:2:17: rooms: udp_port_min 41000 is above udp_port_max 40000"},
		{"rooms:\n  udp_port_min: many\n  udp_port_max: 40000\n", "c.yaml:2:17: rooms.udp_port_min: want a UDP port 1024–65535, or 0 for any"},
		{"rooms:\n  stun: x\n", `c.yaml:2:3: rooms: unknown key "stun"; allowed: ice_ip, udp_port_min, udp_port_max`},
	} {
		_, err := Parse("c.yaml", []byte(c.yaml), "/etc/sb")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}
