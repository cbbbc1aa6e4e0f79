package network

import (
	"net"
	"testing"
)

func mustNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = n.IP.To4()
	return n
}

func TestAllocate(t *testing.T) {
	sub := mustNet("10.0.0.0/29") // .0 network, .7 broadcast
	gw, _ := ip4(net.ParseIP("10.0.0.1"))
	used := map[uint32]bool{}
	var got []string
	last := uint32(0)
	for {
		v, ok := allocate(sub, sub, gw, used, last)
		if !ok {
			break
		}
		used[v], last = true, v
		got = append(got, fromU32(v).String())
	}
	want := "[10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6]"
	if len(got) != 5 || "["+join(got)+"]" != want {
		t.Errorf("allocated %v, want %s", got, want)
	}
	// Wrap around from the cursor.
	delete(used, mustU32("10.0.0.3"))
	if v, ok := allocate(sub, sub, gw, used, mustU32("10.0.0.6")); !ok || fromU32(v).String() != "10.0.0.3" {
		t.Errorf("wrap: %v %v", fromU32(v), ok)
	}
	// A range inside the subnet.
	r := mustNet("10.0.0.4/30")
	if v, ok := allocate(sub, r, gw, map[uint32]bool{}, 0); !ok || fromU32(v).String() != "10.0.0.4" {
		t.Errorf("range: %v", fromU32(v))
	}
	if v, ok := allocate(sub, r, gw, map[uint32]bool{}, mustU32("10.0.0.6")); !ok || fromU32(v).String() != "10.0.0.4" {
		t.Errorf("range after .6 (.7 is broadcast): %v", fromU32(v))
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func mustU32(s string) uint32 {
	v, _ := ip4(net.ParseIP(s))
	return v
}

func TestChooseSubnet(t *testing.T) {
	n, err := chooseSubnet(nil)
	if err != nil || n.String() != "172.17.0.0/16" {
		t.Errorf("empty host: %v %v", n, err)
	}
	used := []usedNet{{Net: mustNet("172.16.0.0/12")}, {Net: mustNet("192.168.0.0/24")}}
	if n, err = chooseSubnet(used); err != nil || n.String() != "192.168.16.0/20" {
		t.Errorf("172.16/12 and 192.168.0/24 used: %v %v", n, err)
	}
	used = append(used, usedNet{Net: mustNet("192.168.0.0/16")})
	if _, err = chooseSubnet(used); err == nil {
		t.Error("all pools used: no error")
	}
	if len(defaultPools()) != 15+16 {
		t.Errorf("%d pools", len(defaultPools()))
	}
}

func TestOverlaps(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/8", "10.1.0.0/16", true},
		{"10.1.0.0/16", "10.0.0.0/8", true},
		{"10.0.0.0/16", "10.1.0.0/16", false},
		{"192.168.1.0/24", "192.168.1.128/25", true},
		{"192.168.1.0/25", "192.168.1.128/25", false},
	} {
		if got := overlaps(mustNet(c.a), mustNet(c.b)); got != c.want {
			t.Errorf("overlaps(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100\n")
	start, state, err := parseStat(line)
	if err != nil || start != 987654 || state != "S" {
		t.Errorf("parseStat: %d %q %v", start, state, err)
	}
	if _, _, err := parseStat([]byte("1 (x) S 1 2")); err == nil {
		t.Error("short stat: no error")
	}
	if mac := macFor(net.ParseIP("172.18.0.2")); mac.String() != "02:42:ac:12:00:02" {
		t.Errorf("mac %s", mac)
	}
}
