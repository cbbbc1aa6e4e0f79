package registry

import (
	"strings"

	"github.com/berth-registry/berth/registry/store"
)

// routeKind names an endpoint of the distribution API.
type routeKind int

const (
	routeBase routeKind = iota
	routeCatalog
	routeTags
	routeManifest
	routeBlob
	routeUploadStart
	routeUpload
	routeReferrers
)

// route is a parsed request path: the endpoint, the repository name and the
// reference (tag, digest or upload id) where the endpoint has one. The name is
// validated; the reference is validated by the handler that knows its kind.
type route struct {
	kind routeKind
	name string
	ref  string
}

// parseRoute maps a /v2/ path to its endpoint. Repository names may contain
// "/" and even the words "manifests" or "blobs", so the endpoint keyword is
// the right-most one that leaves a well-formed tail.
func parseRoute(p string) (route, error) {
	rest, ok := strings.CutPrefix(p, "/v2")
	if !ok {
		return route{}, errRoute
	}
	if rest == "" || rest == "/" {
		return route{kind: routeBase}, nil
	}
	if rest[0] != '/' {
		return route{}, errRoute
	}
	rest = rest[1:]
	if rest == "_catalog" {
		return route{kind: routeCatalog}, nil
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return named(route{kind: routeTags, name: name})
	}
	best, bestKind, bestRef := -1, routeKind(0), ""
	try := func(kw string, kind routeKind) {
		i := strings.LastIndex(rest, kw)
		if i <= best {
			return
		}
		tail := rest[i+len(kw):]
		switch kind {
		case routeBlob:
			switch {
			case tail == "uploads" || tail == "uploads/":
				kind, tail = routeUploadStart, ""
			case strings.HasPrefix(tail, "uploads/"):
				kind, tail = routeUpload, tail[len("uploads/"):]
			}
		}
		if (kind != routeUploadStart && tail == "") || strings.Contains(tail, "/") {
			return
		}
		best, bestKind, bestRef = i, kind, tail
	}
	try("/manifests/", routeManifest)
	try("/blobs/", routeBlob)
	try("/referrers/", routeReferrers)
	if best < 0 {
		return route{}, errRoute
	}
	return named(route{kind: bestKind, name: rest[:best], ref: bestRef})
}

func named(r route) (route, error) {
	if err := store.ValidateName(r.name); err != nil {
		return route{}, err
	}
	return r, nil
}
