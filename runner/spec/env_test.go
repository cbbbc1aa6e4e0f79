package spec

import (
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnv(t *testing.T) {
	caller := lookupFrom(map[string]string{"FROM_CALLER": "caller-value", "EMPTY": ""})
	for _, c := range []struct {
		name  string
		image []string
		opts  Options
		want  []string
	}{
		{"defaults", nil, Options{},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "HOME=/")},
		{"tty sets TERM", nil, Options{TTY: true},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "TERM=xterm", "HOME=/")},
		{"image PATH replaces the default in place", sl("PATH=/opt/bin", "LANG=C.UTF-8"), Options{},
			sl("PATH=/opt/bin", "HOSTNAME=0123456789ab", "LANG=C.UTF-8", "HOME=/")},
		{"-e overrides image", sl("A=image", "B=image"), Options{Env: sl("A=cli")},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "A=cli", "B=image", "HOME=/")},
		{"-e KEY from the caller", nil, Options{Env: sl("FROM_CALLER", "EMPTY")},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "FROM_CALLER=caller-value", "EMPTY=", "HOME=/")},
		{"-e KEY the caller lacks unsets the image's", sl("GONE=image", "KEEP=1"), Options{Env: sl("GONE")},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "KEEP=1", "HOME=/")},
		{"-e wins over env file", sl("X=image"), Options{EnvFile: sl("X=file", "Y=file"), Env: sl("X=cli")},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "X=cli", "Y=file", "HOME=/")},
		{"later -e wins", nil, Options{Env: sl("A=1", "A=2")},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "A=2", "HOME=/")},
		{"HOSTNAME overridable", nil, Options{Env: sl("HOSTNAME=mine")},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=mine", "HOME=/")},
		{"HOME kept when set", sl("HOME=/srv"), Options{},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "HOME=/srv")},
		{"-h sets HOSTNAME", nil, Options{Hostname: "web"},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=web", "HOME=/")},
		{"value with = and spaces", nil, Options{Env: sl("Q=a=b c")},
			sl("PATH="+DefaultPathEnv, "HOSTNAME=0123456789ab", "Q=a=b c", "HOME=/")},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := &ocispec.Image{Config: ocispec.ImageConfig{Cmd: sl("sh"), Env: c.image}}
			o := c.opts
			o.LookupEnv = caller
			s, _, err := Generate(img, "", "0123456789abcdef", &o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Env, c.want) {
				t.Fatalf("env =\n%q\nwant\n%q", s.Process.Env, c.want)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	for _, e := range []string{"=x", "", "A=\x00"} {
		if _, _, err := Generate(image(nil, sl("sh")), "", "abc", &Options{Env: sl(e)}); err == nil {
			t.Errorf("-e %q accepted", e)
		}
	}
	_, _, err := Generate(image(nil, sl("sh")), "", "abc", &Options{Env: sl("=x")})
	if err == nil || err.Error() != "invalid environment variable: =x" {
		t.Fatalf("err = %v", err)
	}
}

func TestHomeFromPasswd(t *testing.T) {
	root := fakeRootfs(t, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnohome:x:1001:1001::\n",
	})
	for user, want := range map[string]string{"": "/root", "app": "/home/app", "1000": "/home/app", "4242": "/", "nohome": "/"} {
		s, _, err := Generate(image(nil, sl("sh")), root, "abc", &Options{User: user})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Process.Env[len(s.Process.Env)-1]; got != "HOME="+want {
			t.Errorf("user %q: %s, want HOME=%s", user, got, want)
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	caller := lookupFrom(map[string]string{"PASSED": "from-caller", "EMPTY": ""})
	for _, c := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"simple", "A=1\nB=2\n", sl("A=1", "B=2"), ""},
		{"comments and blank lines", "# comment\n\n   # indented comment\nA=1\n\t\n", sl("A=1"), ""},
		{"leading whitespace trimmed", "   A=1\n\tB=2", sl("A=1", "B=2"), ""},
		{"value untrimmed, quotes kept", "A= spaced value  \nB=\"quoted\"\nC='single'", sl("A= spaced value  ", "B=\"quoted\"", "C='single'"), ""},
		{"no trailing comments", "A=1 # not a comment", sl("A=1 # not a comment"), ""},
		{"empty value", "A=\n", sl("A="), ""},
		{"value with =", "A=b=c", sl("A=b=c"), ""},
		{"KEY from caller", "PASSED\nEMPTY\n", sl("PASSED=from-caller", "EMPTY="), ""},
		{"KEY absent from caller dropped", "MISSING\nA=1", sl("A=1"), ""},
		{"CRLF", "A=1\r\nB=2\r\n", sl("A=1", "B=2"), ""},
		{"BOM", "\ufeffA=1\n", sl("A=1"), ""},
		{"whitespace in key", "MY VAR=1", nil, "poorly formatted environment: variable 'MY VAR' contains whitespaces"},
		{"trailing whitespace in bare key", "KEY \n", nil, "poorly formatted environment: variable 'KEY ' contains whitespaces"},
		{"empty key", "=value", nil, "poorly formatted environment: no variable name on line '=value'"},
		{"invalid utf8", "A=1\nB=\xff\n", nil, "env file contains invalid utf8 bytes at line 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseEnvFile(strings.NewReader(c.in), caller)
			if c.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.err) {
					t.Fatalf("err = %v, want %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	got, err := ParseEnvFile(strings.NewReader("PASSED\nA=1"), nil)
	if err != nil || !slices.Equal(got, sl("A=1")) {
		t.Fatalf("nil lookup: %q %v", got, err)
	}
}
