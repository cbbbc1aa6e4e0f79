package berth_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/berth-registry/berth/"

// TestLayering enforces DESIGN.md's rule: registry/... and runner/... do
// not import each other, except runner/image using registry/client. Test
// files may start an in-process registry, so only non-test files count.
func TestLayering(t *testing.T) {
	allowed := map[string]bool{"runner/image->registry/client": true}
	checked := 0
	for _, top := range []string{"registry", "runner"} {
		other := map[string]string{"registry": "runner", "runner": "registry"}[top]
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			pkg := filepath.ToSlash(filepath.Dir(p))
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				rel, ok := strings.CutPrefix(path, module)
				if !ok || (rel != other && !strings.HasPrefix(rel, other+"/")) {
					continue
				}
				if !allowed[pkg+"->"+rel] {
					t.Errorf("%s imports %s: %s/... and %s/... must not import each other", p, path, top, other)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked == 0 {
		t.Fatal("no files checked")
	}
}
