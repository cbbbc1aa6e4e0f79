package volume

import (
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseVolume(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mount
	}{
		{"/data", Mount{Type: TypeVolume, Target: "/data"}},
		{"/data/", Mount{Type: TypeVolume, Target: "/data"}},
		{"vol:/data", Mount{Type: TypeVolume, Source: "vol", Target: "/data", Bind: "vol:/data"}},
		{"vol:/data:ro", Mount{Type: TypeVolume, Source: "vol", Target: "/data", ReadOnly: true, Mode: "ro", Bind: "vol:/data:ro"}},
		{"vol:/data:nocopy", Mount{Type: TypeVolume, Source: "vol", Target: "/data", NoCopy: true, Mode: "nocopy", Bind: "vol:/data:nocopy"}},
		{"vol:/data:ro,nocopy,z", Mount{Type: TypeVolume, Source: "vol", Target: "/data", ReadOnly: true, NoCopy: true, Mode: "ro,nocopy,z", Bind: "vol:/data:ro,nocopy,z"}},
		{"/h:/c", Mount{Type: TypeBind, Source: "/h", Target: "/c", Bind: "/h:/c"}},
		{"/h/../x/:/c/./d", Mount{Type: TypeBind, Source: "/x", Target: "/c/d", Bind: "/h/../x/:/c/./d"}},
		{"/h:/c:rw", Mount{Type: TypeBind, Source: "/h", Target: "/c", Mode: "rw", Bind: "/h:/c:rw"}},
		{"/h:/c:ro,Z", Mount{Type: TypeBind, Source: "/h", Target: "/c", ReadOnly: true, Mode: "ro,Z", Bind: "/h:/c:ro,Z"}},
		{"/h:/c:rshared", Mount{Type: TypeBind, Source: "/h", Target: "/c", Propagation: "rshared", Mode: "rshared", Bind: "/h:/c:rshared"}},
		{"/h:/c:ro,slave,cached", Mount{Type: TypeBind, Source: "/h", Target: "/c", ReadOnly: true, Propagation: "slave", Mode: "ro,slave,cached", Bind: "/h:/c:ro,slave,cached"}},
	} {
		got, err := ParseVolume(tc.in)
		if err != nil {
			t.Errorf("ParseVolume(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseVolume(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseVolumeErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "invalid volume specification: ''"},
		{"rel", `invalid volume specification: 'rel': invalid mount config for type "volume": invalid mount path: 'rel' mount path must be absolute`},
		{"/data:rw", "invalid volume specification: '/data:rw'"},
		{":/data", "invalid volume specification: ':/data'"},
		{"v:/data:bogus", "invalid mode: bogus"},
		{"v:/data:ro,rw", "invalid mode: ro,rw"},
		{"v:/data:z,Z", "invalid mode: z,Z"},
		{"v:/data:shared,slave", "invalid mode: shared,slave"},
		{"/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"},
		{"v:rel", "mount path must be absolute"},
		{"v:/", "invalid specification: destination can't be '/'"},
		{"/h:/", "destination can't be '/'"},
		{"/h:/c:nocopy", `invalid mount config for type "bind": field VolumeOptions must not be specified`},
		{"v:/c:shared", `invalid mount config for type "volume": field BindOptions must not be specified`},
		{"a/b:/c", `"a/b" includes invalid characters for a local volume name`},
		{"..:/c", "invalid volume name"},
		{"../etc:/c", "invalid volume name"},
		{"./rel:/c", "invalid volume name"},
		{"x:/c", "invalid volume name"}, // one character: Docker wants two
		{"-x:/c", "invalid volume name"},
		{"v:/a\x00b", "invalid volume specification"},
	} {
		_, err := ParseVolume(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseVolume(%q) error %v, want %q", tc.in, err, tc.msg)
		}
	}
}

func TestParseMount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mount
	}{
		{"type=bind,source=/h,target=/c", Mount{Type: TypeBind, Source: "/h", Target: "/c"}},
		{"type=bind,src=/h,dst=/c,readonly", Mount{Type: TypeBind, Source: "/h", Target: "/c", ReadOnly: true}},
		{"type=bind,src=/h,destination=/c,ro=true,bind-propagation=rslave", Mount{Type: TypeBind, Source: "/h", Target: "/c", ReadOnly: true, Propagation: "rslave"}},
		{"type=bind,src=/h,dst=/c,readonly=false", Mount{Type: TypeBind, Source: "/h", Target: "/c"}},
		{"src=vv,dst=/c", Mount{Type: TypeVolume, Source: "vv", Target: "/c"}},
		{"dst=/c", Mount{Type: TypeVolume, Target: "/c"}},
		{"type=volume,src=vv,dst=/c,volume-nocopy,volume-label=a=b,volume-label=c", Mount{Type: TypeVolume, Source: "vv", Target: "/c", NoCopy: true, Labels: map[string]string{"a": "b", "c": ""}}},
		{"type=volume,src=vv,dst=/c,volume-nocopy=false,volume-driver=local", Mount{Type: TypeVolume, Source: "vv", Target: "/c"}},
		{"type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", Mount{Type: TypeTmpfs, Target: "/t", TmpfsSize: 1 << 20, TmpfsMode: 0o1770}},
		{`"type=bind","src=/a,b",dst=/c`, Mount{Type: TypeBind, Source: "/a,b", Target: "/c"}},
	} {
		got, err := ParseMount(tc.in)
		if err != nil {
			t.Errorf("ParseMount(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMount(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseMountErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"type=bind,src=/h", `invalid argument "type=bind,src=/h" for "--mount" flag: invalid mount config for type "bind": field Target must not be empty`},
		{"type=bind,dst=/c", "field Source must not be empty"},
		{"type=bind,src=rel,dst=/c", "mount path must be absolute"},
		{"type=bind,src=/h,dst=rel", "invalid mount path: 'rel' mount path must be absolute"},
		{"type=bind,src=/h,dst=/", "destination can't be '/'"},
		{"type=tmpfs,src=x,dst=/c", `invalid mount config for type "tmpfs": field Source must not be specified`},
		{"type=nfs,dst=/c", `invalid mount config for type "nfs": mount type unknown`},
		{"src=v,dst=/c,bogus", "invalid field 'bogus' must be a key=value pair"},
		{"src=v,dst=/c,bogus=1", "unexpected key 'bogus' in 'bogus=1'"},
		{"src=v,dst=/c,readonly=maybe", "invalid value for readonly: maybe"},
		{"src=v,dst=/c,volume-nocopy=maybe", "invalid value for volume-nocopy: maybe"},
		{"type=bind,src=/h,dst=/c,bind-propagation=weird", "invalid value for bind-propagation: weird"},
		{"type=bind,src=/h,dst=/c,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"},
		{"type=volume,src=v,dst=/c,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'"},
		{"type=bind,src=/h,dst=/c,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"},
		{"type=tmpfs,dst=/c,tmpfs-size=lots", "invalid value for tmpfs-size: lots"},
		{"type=tmpfs,dst=/c,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"},
		{"src=a/b,dst=/c", "invalid volume name"},
		{"src=..,dst=/c", "invalid volume name"},
		{"src=v,dst=/c,volume-driver=nfs", `volume driver "nfs" is not supported`},
		{"src=v,dst=/c,volume-opt=type=nfs", "volume-opt is not supported"},
		{`src="unterminated,dst=/c`, `for "--mount" flag`},
	} {
		_, err := ParseMount(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseMount(%q) error %v, want %q", tc.in, err, tc.msg)
		}
	}
}

func TestParseVolumesFrom(t *testing.T) {
	for _, tc := range []struct{ in, name, mode, err string }{
		{in: "c", name: "c"},
		{in: "c:ro", name: "c", mode: "ro"},
		{in: "c:rw", name: "c", mode: "rw"},
		{in: "", err: "malformed volumes-from specification"},
		{in: ":ro", err: "malformed volumes-from specification"},
		{in: "c:bogus", err: "invalid mode: bogus"},
		{in: "c:shared", err: "can not use propagation properties"},
		{in: "c:nocopy", err: "invalid mode: nocopy"},
	} {
		name, mode, err := ParseVolumesFrom(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseVolumesFrom(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || name != tc.name || mode != tc.mode {
			t.Errorf("ParseVolumesFrom(%q) = %q, %q, %v", tc.in, name, mode, err)
		}
	}
}

func TestCheckBindSource(t *testing.T) {
	dir := t.TempDir()
	if err := CheckBindSource(Mount{Type: TypeBind, Source: dir}); err != nil {
		t.Error(err)
	}
	missing := dir + "/missing"
	err := CheckBindSource(Mount{Type: TypeBind, Source: missing})
	if err == nil || err.Error() != `invalid mount config for type "bind": bind source path does not exist: `+missing {
		t.Errorf("missing source: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the missing source was created")
	}
	if err := CheckBindSource(Mount{Type: TypeVolume, Source: "v"}); err != nil {
		t.Error(err)
	}
}

func TestSpecMountAndMountPoint(t *testing.T) {
	m, _ := ParseVolume("/h:/c:ro,rslave")
	if got, want := m.SpecMount("/h"), (specs.Mount{Destination: "/c", Type: "bind", Source: "/h", Options: []string{"rbind", "ro", "rslave"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("bind: %+v", got)
	}
	if mp := m.MountPoint("/h"); mp.Type != "bind" || mp.RW || mp.Mode != "ro,rslave" || mp.Propagation != "rslave" {
		t.Errorf("bind mount point: %+v", mp)
	}
	m, _ = ParseVolume("vol:/c")
	if got := m.SpecMount("/s/vol/_data"); !reflect.DeepEqual(got.Options, []string{"rbind", "rprivate"}) || got.Source != "/s/vol/_data" {
		t.Errorf("volume: %+v", got)
	}
	if mp := m.MountPoint("/s/vol/_data"); mp.Type != "volume" || mp.Name != "vol" || mp.Driver != "local" || !mp.RW {
		t.Errorf("volume mount point: %+v", mp)
	}
	m, _ = ParseMount("type=tmpfs,dst=/t,tmpfs-size=1k,tmpfs-mode=700,ro")
	if got := m.SpecMount(""); got.Type != "tmpfs" || !reflect.DeepEqual(got.Options, []string{"noexec", "nosuid", "nodev", "rprivate", "ro", "size=1024", "mode=700"}) {
		t.Errorf("tmpfs: %+v", got)
	}
}
