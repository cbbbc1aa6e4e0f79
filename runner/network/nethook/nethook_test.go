package nethook

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUseEmbeddedResolver(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := useEmbeddedResolver(path); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte("nameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch example.org\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	if err := useEmbeddedResolver(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if want := "nameserver 127.0.0.11\nsearch example.org\noptions ndots:2\n"; string(b) != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", b, want)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("resolv.conf was replaced, not rewritten in place (a bind mount would keep the old file)")
	}
	// Already the embedded server: untouched.
	if err := useEmbeddedResolver(path); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Errorf("second call changed the file: %q", b2)
	}
}
