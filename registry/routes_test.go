package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/registry/store"
)

var sha = "sha256:" + strings.Repeat("ab", 32)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
		err  error
	}{
		{"/v2", route{kind: routeBase}, nil},
		{"/v2/", route{kind: routeBase}, nil},
		{"/v2/_catalog", route{kind: routeCatalog}, nil},
		{"/v2/library/app/tags/list", route{kind: routeTags, name: "library/app"}, nil},
		{"/v2/a/manifests/latest", route{kind: routeManifest, name: "a", ref: "latest"}, nil},
		{"/v2/a/b/c/manifests/" + sha, route{kind: routeManifest, name: "a/b/c", ref: sha}, nil},
		{"/v2/a/blobs/" + sha, route{kind: routeBlob, name: "a", ref: sha}, nil},
		{"/v2/a/blobs/sha256:x", route{kind: routeBlob, name: "a", ref: "sha256:x"}, nil}, // refs are checked by handlers
		{"/v2/a/blobs/uploads/", route{kind: routeUploadStart, name: "a"}, nil},
		{"/v2/a/blobs/uploads", route{kind: routeUploadStart, name: "a"}, nil},
		{"/v2/a/blobs/uploads/some-id", route{kind: routeUpload, name: "a", ref: "some-id"}, nil},
		{"/v2/a/referrers/" + sha, route{kind: routeReferrers, name: "a", ref: sha}, nil},
		// Keywords inside names: the right-most keyword that leaves a well-formed tail wins.
		{"/v2/manifests/manifests/x", route{kind: routeManifest, name: "manifests", ref: "x"}, nil},
		{"/v2/a/manifests/b/manifests/c", route{kind: routeManifest, name: "a/manifests/b", ref: "c"}, nil},
		{"/v2/a/blobs/blobs/uploads/", route{kind: routeUploadStart, name: "a/blobs"}, nil},
		{"/v2/blobs/manifests/blobs", route{kind: routeManifest, name: "blobs", ref: "blobs"}, nil},
		{"/v2/a/tags/list/manifests/x", route{kind: routeManifest, name: "a/tags/list", ref: "x"}, nil},
		{"/v2/a/referrers/b/blobs/uploads/x", route{kind: routeUpload, name: "a/referrers/b", ref: "x"}, nil},

		// Not an endpoint.
		{"", route{}, errRoute},
		{"/", route{}, errRoute},
		{"/v3/", route{}, errRoute},
		{"/v1/_ping", route{}, errRoute},
		{"/v2/a", route{}, errRoute},
		{"/v2/_catalog/", route{}, errRoute},
		{"/v2/a/manifests/", route{}, errRoute},
		{"/v2/a/manifests/x/y", route{}, errRoute},
		{"/v2/a/manifests/../../x", route{}, errRoute},
		{"/v2/a/blobs/", route{}, errRoute},
		{"/v2/a/blobs/sha256:../../x", route{}, errRoute},
		{"/v2/a/blobs/uploads/x/y", route{}, errRoute},
		{"/v2/a/blobs/uploads/../../x", route{}, errRoute},
		{"/v2/a/referrers/", route{}, errRoute},
		{"/v2/a/unknown/x", route{}, errRoute},
		{"/v2/tags/list", route{}, errRoute},
		// The prefix is the path segment "v2", not any path starting with "/v2".
		{"/v2library/app/manifests/latest", route{}, errRoute},
		{"/v2x_catalog", route{}, errRoute},
		{"/v20/a/manifests/latest", route{}, errRoute},

		// Endpoints with a malformed name.
		{"/v2/A/manifests/x", route{}, store.ErrNameInvalid},
		{"/v2/a/../b/manifests/x", route{}, store.ErrNameInvalid},
		{"/v2/../../etc/manifests/x", route{}, store.ErrNameInvalid},
		{"/v2/a//b/manifests/x", route{}, store.ErrNameInvalid},
		{"/v2//manifests/x", route{}, store.ErrNameInvalid},
		{"/v2//tags/list", route{}, store.ErrNameInvalid},
		{"/v2/_x/blobs/uploads/", route{}, store.ErrNameInvalid},
		{"/v2/a/_layers/blobs/" + sha, route{}, store.ErrNameInvalid},
		{"/v2/" + strings.Repeat("a", 300) + "/tags/list", route{}, store.ErrNameInvalid},
		{"/v2/a/./b/manifests/x", route{}, store.ErrNameInvalid},
	}
	for _, tc := range tests {
		got, err := parseRoute(tc.path)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("parseRoute(%q) = %+v, %v; want error %v", truncateForLog(tc.path), got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v", tc.path, got, err, tc.want)
		}
	}
}

// routePaths are the paths that parse to rt: parseRoute is a bijection
// between them and routes, up to the optional trailing slashes.
func routePaths(rt route) []string {
	base := "/v2/" + rt.name
	switch rt.kind {
	case routeBase:
		return []string{"/v2", "/v2/"}
	case routeCatalog:
		return []string{"/v2/_catalog"}
	case routeTags:
		return []string{base + "/tags/list"}
	case routeManifest:
		return []string{base + "/manifests/" + rt.ref}
	case routeBlob:
		return []string{base + "/blobs/" + rt.ref}
	case routeUploadStart:
		return []string{base + "/blobs/uploads", base + "/blobs/uploads/"}
	case routeUpload:
		return []string{base + "/blobs/uploads/" + rt.ref}
	case routeReferrers:
		return []string{base + "/referrers/" + rt.ref}
	}
	return nil
}

func FuzzParseRoute(f *testing.F) {
	for _, p := range []string{
		"/v2", "/v2/", "/v2/_catalog", "/v2/library/app/tags/list", "/v2/a/manifests/latest",
		"/v2/a/b/manifests/" + sha, "/v2/a/blobs/" + sha, "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b",
		"/v2/a/referrers/" + sha, "/v2/manifests/manifests/manifests", "/v2/a/blobs/blobs/uploads/uploads",
		"/v2/a/../b/manifests/x", "/v2/a//b/tags/list", "/v2/A/blobs/uploads", "/v2/a/manifests/../../x", "/v3/x",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rt, err := parseRoute(p)
		if err != nil {
			if !errors.Is(err, errRoute) && !errors.Is(err, store.ErrNameInvalid) {
				t.Fatalf("parseRoute(%q): unexpected error class %v", p, err)
			}
			return
		}
		switch rt.kind {
		case routeBase, routeCatalog:
			if rt.name != "" || rt.ref != "" {
				t.Fatalf("parseRoute(%q) = %+v: name or ref on a global endpoint", p, rt)
			}
		default:
			if err := store.ValidateName(rt.name); err != nil {
				t.Fatalf("parseRoute(%q) = %+v: %v", p, rt, err)
			}
		}
		if strings.Contains(rt.ref, "/") {
			t.Fatalf("parseRoute(%q) = %+v: ref contains a slash", p, rt)
		}
		if (rt.ref == "") != (rt.kind == routeBase || rt.kind == routeCatalog || rt.kind == routeTags || rt.kind == routeUploadStart) {
			t.Fatalf("parseRoute(%q) = %+v: ref presence does not match the endpoint", p, rt)
		}
		if !slices.Contains(routePaths(rt), p) {
			t.Fatalf("parseRoute(%q) = %+v, which is the path of %q", p, rt, routePaths(rt))
		}
	})
}
