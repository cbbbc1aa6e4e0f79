package image

import (
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestApplyChanges covers the instructions of `commit -c` and `import -c` (one parser for
// both): the forms the two former parsers accepted, Docker's quoting, escapes and
// expansion, and the errors.
func TestApplyChanges(t *testing.T) {
	base := func() ocispec.ImageConfig {
		return ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/bin:/bin", "HOME=/root", "PORTS=80 443", "EMPTY="},
			Cmd:        []string{"sh"},
			WorkingDir: "/srv",
		}
	}
	for _, tc := range []struct {
		name    string
		changes []string
		want    func(c *ocispec.ImageConfig) // edits base() into the expected config
		err     string                       // a substring of the error, when one is expected
	}{
		{name: "none"},
		{name: "blank and comment lines", changes: []string{"", "  ", "# CMD no"}},
		{name: "CMD exec form", changes: []string{`CMD ["/bin/busybox", "echo", "imported"]`},
			want: func(c *ocispec.ImageConfig) { c.Cmd = []string{"/bin/busybox", "echo", "imported"} }},
		{name: "CMD shell form, unexpanded", changes: []string{`CMD echo "$HOME" hi`},
			want: func(c *ocispec.ImageConfig) { c.Cmd = []string{"/bin/sh", "-c", `echo "$HOME" hi`} }},
		{name: "CMD bad JSON is shell form", changes: []string{`CMD [not json`},
			want: func(c *ocispec.ImageConfig) { c.Cmd = []string{"/bin/sh", "-c", "[not json"} }},
		{name: "lower-case instruction", changes: []string{`cmd echo hi`},
			want: func(c *ocispec.ImageConfig) { c.Cmd = []string{"/bin/sh", "-c", "echo hi"} }},
		{name: "ENTRYPOINT clears Cmd", changes: []string{`ENTRYPOINT ["echo", "hello"]`},
			want: func(c *ocispec.ImageConfig) { c.Entrypoint = []string{"echo", "hello"}; c.Cmd = nil }},
		{name: "ENTRYPOINT after CMD keeps it", changes: []string{"CMD world", "ENTRYPOINT echo"},
			want: func(c *ocispec.ImageConfig) {
				c.Cmd = []string{"/bin/sh", "-c", "world"}
				c.Entrypoint = []string{"/bin/sh", "-c", "echo"}
			}},
		{name: "several instructions in one value, continuation", changes: []string{"USER app\nCMD echo \\\n  a b"},
			want: func(c *ocispec.ImageConfig) { c.User = "app"; c.Cmd = []string{"/bin/sh", "-c", "echo a b"} }},
		{name: "ENV pairs, quotes, in place", changes: []string{`ENV A=1 B='two words' HOME="/home/x y" C=a\ b`},
			want: func(c *ocispec.ImageConfig) {
				c.Env = []string{"PATH=/usr/bin:/bin", "HOME=/home/x y", "PORTS=80 443", "EMPTY=", "A=1", "B=two words", "C=a b"}
			}},
		{name: "ENV double quotes escape", changes: []string{`ENV Q="say \"hi\" \$x \n"`},
			want: func(c *ocispec.ImageConfig) { c.Env = append(c.Env, `Q=say "hi" $x \n`) }},
		{name: "ENV legacy form", changes: []string{"ENV COMMITTED yes it   is"},
			want: func(c *ocispec.ImageConfig) { c.Env = append(c.Env, "COMMITTED=yes it   is") }},
		{name: "ENV expansion sees the Env before the instruction", changes: []string{`ENV HOME=/x OLD=$HOME P=${PATH}:/sbin`, `ENV NEW=$HOME`},
			want: func(c *ocispec.ImageConfig) {
				c.Env = []string{"PATH=/usr/bin:/bin", "HOME=/x", "PORTS=80 443", "EMPTY=", "OLD=/root", "P=/usr/bin:/bin:/sbin", "NEW=/x"}
			}},
		{name: "expansion modifiers", changes: []string{`ENV A=${NOPE:-def} B=${EMPTY:-e} C=${EMPTY-e} D=${HOME:+set} E=${NOPE:+set} F='$HOME' G=$ H=${NOPE:-${HOME}}`},
			want: func(c *ocispec.ImageConfig) {
				c.Env = append(c.Env, "A=def", "B=e", "C=", "D=set", "E=", "F=$HOME", "G=$", "H=/root")
			}},
		{name: "LABEL pairs and legacy", changes: []string{`LABEL a=b c="d e" home=$HOME`, "label legacy some value"},
			want: func(c *ocispec.ImageConfig) {
				c.Labels = map[string]string{"a": "b", "c": "d e", "home": "/root", "legacy": "some value"}
			}},
		{name: "EXPOSE ports, protocols, ranges, expansion", changes: []string{"EXPOSE 8080 53/udp 7000-7002/TCP $PORTS"},
			want: func(c *ocispec.ImageConfig) {
				c.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "53/udp": {}, "7000/tcp": {}, "7001/tcp": {}, "7002/tcp": {}, "80/tcp": {}, "443/tcp": {}}
			}},
		{name: "VOLUME JSON", changes: []string{`VOLUME ["/data", "/with space"]`},
			want: func(c *ocispec.ImageConfig) { c.Volumes = map[string]struct{}{"/data": {}, "/with space": {}} }},
		{name: "VOLUME words, expansion", changes: []string{`VOLUME /a ${HOME}/cache`},
			want: func(c *ocispec.ImageConfig) { c.Volumes = map[string]struct{}{"/a": {}, "/root/cache": {}} }},
		{name: "WORKDIR absolute, relative, expanded", changes: []string{"WORKDIR /tmp/../var", "WORKDIR lib", "WORKDIR $HOME/x"},
			want: func(c *ocispec.ImageConfig) { c.WorkingDir = "/root/x" }},
		{name: "WORKDIR relative to the image's", changes: []string{`WORKDIR "app dir"`},
			want: func(c *ocispec.ImageConfig) { c.WorkingDir = "/srv/app dir" }},
		{name: "USER and STOPSIGNAL", changes: []string{"USER ${NOPE:-1000}:1000", "STOPSIGNAL SIGINT"},
			want: func(c *ocispec.ImageConfig) { c.User = "1000:1000"; c.StopSignal = "SIGINT" }},
		{name: "STOPSIGNAL number and short name", changes: []string{"STOPSIGNAL 9", "stopsignal quit"},
			want: func(c *ocispec.ImageConfig) { c.StopSignal = "quit" }},

		{name: "RUN", changes: []string{"RUN echo"}, err: "RUN is not a valid change command"},
		{name: "unknown", changes: []string{"foo bar"}, err: "FOO is not a valid change command"},
		{name: "ONBUILD", changes: []string{"ONBUILD RUN true"}, err: "ONBUILD is not supported"},
		{name: "HEALTHCHECK", changes: []string{"HEALTHCHECK CMD true"}, err: "HEALTHCHECK is not supported"},
		{name: "CMD empty", changes: []string{"CMD"}, err: "CMD requires at least one argument"},
		{name: "ENV empty", changes: []string{"ENV"}, err: "ENV requires at least one argument"},
		{name: "ENV one word", changes: []string{"ENV A"}, err: "ENV must have two arguments"},
		{name: "ENV missing =", changes: []string{"ENV A=1 B"}, err: `can't find = in "B"`},
		{name: "ENV blank name", changes: []string{"ENV =x"}, err: "ENV names can not be blank"},
		{name: "ENV unclosed double quote", changes: []string{`ENV A="x`}, err: "matching double-quote"},
		{name: "LABEL unclosed single quote", changes: []string{`LABEL a='x`}, err: "matching single-quote"},
		{name: "missing brace", changes: []string{`ENV A=${HOME`}, err: "missing '}'"},
		{name: "required variable", changes: []string{`ENV A="${NOPE:?must be set}"`}, err: "NOPE: must be set"},
		{name: "EXPOSE proto", changes: []string{"EXPOSE 80/icmp"}, err: "invalid proto: icmp"},
		{name: "EXPOSE port", changes: []string{"EXPOSE http"}, err: "invalid containerPort: http"},
		{name: "EXPOSE range", changes: []string{"EXPOSE 90-80"}, err: "invalid range"},
		{name: "VOLUME empty JSON", changes: []string{"VOLUME []"}, err: "VOLUME requires at least one argument"},
		{name: "VOLUME empty string", changes: []string{`VOLUME ["/a", " "]`}, err: "VOLUME specified can not be an empty string"},
		{name: "WORKDIR empty", changes: []string{"WORKDIR"}, err: "WORKDIR requires exactly one argument"},
		{name: "USER expands to nothing", changes: []string{"USER $NOPE"}, err: "USER requires exactly one argument"},
		{name: "STOPSIGNAL bad", changes: []string{"STOPSIGNAL SIGNOPE"}, err: "Invalid signal: SIGNOPE"},
		{name: "STOPSIGNAL zero", changes: []string{"STOPSIGNAL 0"}, err: "Invalid signal: 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := base()
			err := ApplyChanges(&got, tc.changes)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := base()
			if tc.want != nil {
				tc.want(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestShellWords checks the lexer on its own: splitting, quotes kept together, expansion
// splitting only outside quotes.
func TestShellWords(t *testing.T) {
	env := []string{"V=a b", "E="}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`a  b`, []string{"a", "b"}},
		{`"a  b" 'c d' e\ f`, []string{"a  b", "c d", "e f"}},
		{`$V`, []string{"a", "b"}},
		{`"$V"`, []string{"a b"}},
		{`x$V`, []string{"xa", "b"}},
		{`$E ''`, []string{""}},
		{`'\n' "\n" \n`, []string{`\n`, `\n`, "n"}},
		{`\`, nil},
	} {
		got, err := shellWords(tc.in, env, true)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got, err := shellWord(`  a  "$V"  `, env); err != nil || got != `  a  a b  ` {
		t.Errorf("shellWord kept %q, %v", got, err)
	}
}
