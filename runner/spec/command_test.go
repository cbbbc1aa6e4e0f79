package spec

import (
	"errors"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func image(entrypoint, cmd []string) *ocispec.Image {
	return &ocispec.Image{Config: ocispec.ImageConfig{Entrypoint: entrypoint, Cmd: cmd}}
}

func sl(s ...string) []string { return s }

func ep(s ...string) *[]string {
	if s == nil {
		s = []string{}
	}
	return &s
}

func TestEntrypointAndCmd(t *testing.T) {
	for _, c := range []struct {
		name       string
		img        *ocispec.Image
		entrypoint *[]string
		args       []string
		want       []string
		err        bool
	}{
		{"image cmd only", image(nil, sl("sh")), nil, nil, sl("sh"), false},
		{"image cmd with args", image(nil, sl("echo", "hi")), nil, nil, sl("echo", "hi"), false},
		{"image entrypoint only", image(sl("/entry", "-x"), nil), nil, nil, sl("/entry", "-x"), false},
		{"image entrypoint and cmd", image(sl("/entry"), sl("--flag")), nil, nil, sl("/entry", "--flag"), false},
		{"args replace image cmd", image(sl("/entry"), sl("--flag")), nil, sl("a", "b"), sl("/entry", "a", "b"), false},
		{"args replace cmd without entrypoint", image(nil, sl("sh")), nil, sl("ls", "-l"), sl("ls", "-l"), false},
		{"args with empty image", image(nil, nil), nil, sl("true"), sl("true"), false},
		{"--entrypoint drops image cmd", image(sl("/entry"), sl("--flag")), ep("/bin/sh"), nil, sl("/bin/sh"), false},
		{"--entrypoint drops cmd of image without entrypoint", image(nil, sl("sh", "-c", "x")), ep("/bin/date"), nil, sl("/bin/date"), false},
		{"--entrypoint with args", image(sl("/entry"), sl("--flag")), ep("/bin/sh"), sl("-c", "id"), sl("/bin/sh", "-c", "id"), false},
		{"--entrypoint with several words (API)", image(nil, sl("x")), ep("/bin/sh", "-c"), sl("id"), sl("/bin/sh", "-c", "id"), false},
		{"--entrypoint \"\" with args", image(sl("/entry"), sl("--flag")), ep(""), sl("echo", "hi"), sl("echo", "hi"), false},
		{"--entrypoint \"\" without args", image(sl("/entry"), sl("--flag")), ep(""), nil, nil, true},
		{"--entrypoint \"\" image with only cmd", image(nil, sl("sh")), ep(""), nil, nil, true},
		{"API entrypoint [] keeps image cmd", image(sl("/entry"), sl("sh")), ep(), nil, sl("sh"), false},
		{"API entrypoint [] with args", image(sl("/entry"), sl("sh")), ep(), sl("id"), sl("id"), false},
		{"nothing at all", image(nil, nil), nil, nil, nil, true},
		{"nil image with args", nil, nil, sl("true"), sl("true"), false},
		{"nil image without args", nil, nil, nil, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _, err := Generate(c.img, "", "abc", &Options{Entrypoint: c.entrypoint, Cmd: c.args})
			if c.err {
				if !errors.Is(err, errNoCommand) || err.Error() != "No command specified" {
					t.Fatalf("err = %v, want No command specified", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Args, c.want) {
				t.Fatalf("args = %q, want %q", s.Process.Args, c.want)
			}
		})
	}
}

func TestCommandDoesNotAliasImage(t *testing.T) {
	img := image(sl("/entry"), sl("a"))
	s, _, err := Generate(img, "", "abc", &Options{Init: true, InitPath: "/init"})
	if err != nil {
		t.Fatal(err)
	}
	s.Process.Args[2] = "changed"
	if img.Config.Entrypoint[0] != "/entry" {
		t.Fatal("the image config was modified")
	}
}

func TestInit(t *testing.T) {
	img := image(sl("/entry"), sl("serve"))
	s, _, err := Generate(img, "", "abc", &Options{Init: true, InitPath: "/dev/init"})
	if err != nil {
		t.Fatal(err)
	}
	if want := sl("/dev/init", "--", "/entry", "serve"); !slices.Equal(s.Process.Args, want) {
		t.Fatalf("args = %q, want %q", s.Process.Args, want)
	}
	if s.Annotations[AnnotationInit] != "true" {
		t.Fatal("init annotation missing")
	}
	if _, _, err := Generate(img, "", "abc", &Options{Init: true}); err == nil {
		t.Fatal("--init without InitPath accepted")
	}
	// No command stays an error with --init.
	if _, _, err := Generate(image(nil, nil), "", "abc", &Options{Init: true, InitPath: "/i"}); !errors.Is(err, errNoCommand) {
		t.Fatalf("err = %v", err)
	}
	s, _, _ = Generate(img, "", "abc", nil)
	if _, ok := s.Annotations[AnnotationInit]; ok {
		t.Fatal("init annotation without --init")
	}
}

func TestWorkingDir(t *testing.T) {
	for _, c := range []struct {
		image, flag, want, err string
	}{
		{"", "", "/", ""},
		{"/app", "", "/app", ""},
		{"/app/", "", "/app", ""},
		{"/app/../srv//x/.", "", "/srv/x", ""},
		{"/app", "/data", "/data", ""},
		{"app", "", "", "the working directory 'app' is invalid, it needs to be an absolute path"},
		{"/app", "rel/dir", "", "the working directory 'rel/dir' is invalid, it needs to be an absolute path"},
		{"", "../x", "", "the working directory '../x' is invalid, it needs to be an absolute path"},
	} {
		img := image(nil, sl("sh"))
		img.Config.WorkingDir = c.image
		s, _, err := Generate(img, "", "abc", &Options{WorkingDir: c.flag})
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q/%q: err = %v, want %s", c.image, c.flag, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if s.Process.Cwd != c.want {
			t.Errorf("%q/%q: cwd = %q, want %q", c.image, c.flag, s.Process.Cwd, c.want)
		}
	}
}
