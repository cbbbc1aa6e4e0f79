package portmap

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []Mapping
	}{
		{"80", []Mapping{{ContainerPort: 80, Proto: "tcp"}}},
		{"80/tcp", []Mapping{{ContainerPort: 80, Proto: "tcp"}}},
		{"53/udp", []Mapping{{ContainerPort: 53, Proto: "udp"}}},
		{"53/UDP", []Mapping{{ContainerPort: 53, Proto: "udp"}}},
		{"8080:80", []Mapping{{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}},
		{"0:80", []Mapping{{ContainerPort: 80, Proto: "tcp"}}},
		{":80", []Mapping{{ContainerPort: 80, Proto: "tcp"}}},
		{"127.0.0.1:8080:80", []Mapping{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}},
		{"127.0.0.1::80/udp", []Mapping{{HostIP: "127.0.0.1", ContainerPort: 80, Proto: "udp"}}},
		{"[::1]:80:80", []Mapping{{HostIP: "::1", HostPort: 80, ContainerPort: 80, Proto: "tcp"}}},
		{"::1:80:80", []Mapping{{HostIP: "::1", HostPort: 80, ContainerPort: 80, Proto: "tcp"}}},
		{"[::]::80", []Mapping{{HostIP: "::", ContainerPort: 80, Proto: "tcp"}}},
		{"8080-8081:80-81", []Mapping{
			{HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
			{HostPort: 8081, ContainerPort: 81, Proto: "tcp"},
		}},
		{"80-81/udp", []Mapping{{ContainerPort: 80, Proto: "udp"}, {ContainerPort: 81, Proto: "udp"}}},
		{"8000-8010:80", []Mapping{{HostPort: 8000, HostPortEnd: 8010, ContainerPort: 80, Proto: "tcp"}}},
		{"65535:65535", []Mapping{{HostPort: 65535, ContainerPort: 65535, Proto: "tcp"}}},
	} {
		got, err := Parse([]string{tc.spec})
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestParseRefused(t *testing.T) {
	for spec, want := range map[string]string{
		"x":                   "invalid containerPort: x",
		"8080:x":              "invalid containerPort: x",
		"0":                   "invalid containerPort: 0",
		"65536":               "invalid containerPort: 65536",
		"-1":                  "invalid containerPort: -1",
		"81-80":               "invalid containerPort: 81-80",
		"x:80":                "Invalid hostPort: x",
		"70000:80":            "Invalid hostPort: 70000",
		"8081-8080:80":        "Invalid hostPort: 8081-8080",
		"1.2.3:8080:80":       "Invalid ip address: 1.2.3",
		"localhost:8080:80":   "Invalid ip address: localhost",
		"[::1:80:80":          "Invalid ip address: [::1",
		"8080:":               "no port specified: 8080:<empty>",
		"8080-8082:80-81":     "invalid ranges specified for container and host Ports: 80-81 and 8080-8082",
		"80/sctp":             "invalid proto: sctp: only tcp and udp ports can be published",
		"80/icmp":             "invalid proto: icmp",
		"127.0.0.1:8080:80/x": "invalid proto: x",
	} {
		got, err := Parse([]string{"8080:80", spec})
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want error %q", spec, got, want)
			continue
		}
		if err.Error() != want {
			t.Errorf("Parse(%q): error %q, want %q", spec, err, want)
		}
	}
}

func TestParseSeveral(t *testing.T) {
	got, err := Parse([]string{"8080:80", "53/udp"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, {ContainerPort: 53, Proto: "udp"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse = %+v, want %+v", got, want)
	}
	if got, err := Parse(nil); err != nil || got != nil {
		t.Errorf("Parse(nil) = %v, %v", got, err)
	}
}

func TestExposed(t *testing.T) {
	got, err := Exposed(map[string]struct{}{"80/tcp": {}, "53/udp": {}, "53/tcp": {}, "80": {}, "9000-9001/tcp": {}, "132/sctp": {}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{ContainerPort: 53, Proto: "tcp"}, {ContainerPort: 53, Proto: "udp"}, {ContainerPort: 80, Proto: "tcp"},
		{ContainerPort: 9000, Proto: "tcp"}, {ContainerPort: 9001, Proto: "tcp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Exposed = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"x/tcp", "0/tcp", "80/icmp"} {
		if got, err := Exposed(map[string]struct{}{bad: {}}); err == nil {
			t.Errorf("Exposed(%q) = %v, want an error", bad, got)
		}
	}
}

func TestFormat(t *testing.T) {
	maps := []Mapping{
		{HostIP: "0.0.0.0", HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "::1", HostPort: 5353, ContainerPort: 53, Proto: "udp"},
		{HostIP: "127.0.0.1", HostPort: 8081, ContainerPort: 80, Proto: "tcp"},
		{HostPort: 32768, ContainerPort: 443, Proto: "tcp"},
	}
	wantLines := []string{
		"53/udp -> [::1]:5353",
		"80/tcp -> 0.0.0.0:8080",
		"80/tcp -> 127.0.0.1:8081",
		"443/tcp -> 0.0.0.0:32768",
	}
	if got := FormatPorts(maps); !reflect.DeepEqual(got, wantLines) {
		t.Errorf("FormatPorts = %q, want %q", got, wantLines)
	}
	wantMap := map[string][]PortBinding{
		"53/udp":   {{HostIP: "::1", HostPort: "5353"}},
		"80/tcp":   {{HostIP: "0.0.0.0", HostPort: "8080"}, {HostIP: "127.0.0.1", HostPort: "8081"}},
		"443/tcp":  {{HostIP: "0.0.0.0", HostPort: "32768"}},
		"9000/tcp": nil,
	}
	if got := PortMap(maps, map[string]struct{}{"80/tcp": {}, "9000": {}}); !reflect.DeepEqual(got, wantMap) {
		t.Errorf("PortMap = %v, want %v", got, wantMap)
	}
	got, err := Filter(maps, "80")
	if err != nil || len(got) != 2 || got[1].HostAddr() != "127.0.0.1:8081" {
		t.Errorf("Filter 80 = %+v, %v", got, err)
	}
	if _, err := Filter(maps, "53/tcp"); err == nil || err.Error() != "No public port '53/tcp' published" {
		t.Errorf("Filter 53/tcp: %v", err)
	}
	if _, err := Filter(maps, "http"); err == nil {
		t.Error("Filter http: no error")
	}
}
