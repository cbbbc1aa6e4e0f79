package container

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCapabilityNumber(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int
	}{
		{"CAP_CHOWN", 0}, {"chown", 0}, {"NET_ADMIN", 12}, {"cap_net_admin", 12}, {" CAP_SYS_ADMIN ", 21},
		{"CAP_AUDIT_WRITE", 29}, {"SETFCAP", 31}, {"CAP_BPF", 39}, {"CAP_CHECKPOINT_RESTORE", 40},
	} {
		got, err := CapabilityNumber(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("CapabilityNumber(%q) = %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "CAP_", "CAP_NOPE", "ALL", "CAP_CHOWNX"} {
		if _, err := CapabilityNumber(bad); err == nil {
			t.Errorf("CapabilityNumber(%q): no error", bad)
		}
	}
	for n := range capNames {
		name, err := CapabilityName(n)
		if err != nil {
			t.Fatal(err)
		}
		if back, _ := CapabilityNumber(name); back != n {
			t.Errorf("%d → %s → %d", n, name, back)
		}
	}
	if _, err := CapabilityName(41); err == nil {
		t.Error("CapabilityName(41): no error")
	}
}

func TestDockerDefaultCapabilityMask(t *testing.T) {
	m, err := CapabilityMask(dockerDefaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	if len(dockerDefaultCaps) != 14 || m != 0xa80425fb {
		t.Errorf("%d caps, mask %#x; want 14, 0xa80425fb (Docker's CapEff)", len(dockerDefaultCaps), m)
	}
	s, err := parseCaps(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.bounding != m || s.effective != m || s.permitted != m || s.inheritable != 0 || s.ambient != 0 {
		t.Errorf("nil capabilities → %+v, want Docker's default", s)
	}
	s, err = parseCaps(&specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Ambient: []string{"NET_RAW"}})
	if err != nil || s.bounding != 1<<5 || s.ambient != 1<<13 || s.effective != 0 {
		t.Errorf("parseCaps: %+v %v", s, err)
	}
	if _, err := parseCaps(&specs.LinuxCapabilities{Effective: []string{"CAP_BOGUS"}}); err == nil {
		t.Error("unknown capability accepted")
	}
}
