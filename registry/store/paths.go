package store

import (
	"path"

	"github.com/opencontainers/go-digest"
)

// The on-storage tree is distribution's v2 layout, so a data directory or
// bucket written by registry:2 is served unchanged and the reverse:
//
//	<root>/docker/registry/v2/
//	  blobs/<alg>/<first 2 hex>/<hex>/data             the bytes of every blob and manifest, once
//	  repositories/<name>/
//	    _layers/<alg>/<hex>/link                       "<alg>:<hex>": blob linked into the repository
//	    _manifests/revisions/<alg>/<hex>/link          manifest present in the repository
//	    _manifests/tags/<tag>/current/link             digest the tag points to
//	    _manifests/tags/<tag>/index/<alg>/<hex>/link   every digest the tag has pointed to
//	    _uploads/<uuid>/data                           bytes of an upload in progress
//	    _uploads/<uuid>/startedat                      RFC 3339 start time (registry:2 purges by it)
//	    _uploads/<uuid>/_berth/hashstate/<alg>/<offset> Berth's resumable hash state at offset
//	    _referrers/<alg>/<subject hex>/<alg>/<hex>/link  Berth's referrers index: manifests whose
//	                                                   subject is the digest (registry:2 ignores it)
//
// Names starting with "_" are never repository path components (the
// reference grammar forbids them), so they cannot collide with repositories.

const rootPath = "/docker/registry/v2"

func blobDataPath(d digest.Digest) string {
	h := d.Encoded()
	return path.Join(rootPath, "blobs", d.Algorithm().String(), h[:2], h, "data")
}

func repoPath(name string) string { return path.Join(rootPath, "repositories", name) }

func layerLinkDir(name string, d digest.Digest) string {
	return path.Join(repoPath(name), "_layers", d.Algorithm().String(), d.Encoded())
}

func layerLinkPath(name string, d digest.Digest) string { return layerLinkDir(name, d) + "/link" }

func manifestsPath(name string) string { return path.Join(repoPath(name), "_manifests") }

func revisionLinkDir(name string, d digest.Digest) string {
	return path.Join(manifestsPath(name), "revisions", d.Algorithm().String(), d.Encoded())
}

func revisionLinkPath(name string, d digest.Digest) string { return revisionLinkDir(name, d) + "/link" }

func tagsPath(name string) string { return path.Join(manifestsPath(name), "tags") }

func tagPath(name, tag string) string { return path.Join(tagsPath(name), tag) }

func tagCurrentLinkPath(name, tag string) string {
	return path.Join(tagPath(name, tag), "current", "link")
}

func tagIndexLinkPath(name, tag string, d digest.Digest) string {
	return path.Join(tagPath(name, tag), "index", d.Algorithm().String(), d.Encoded(), "link")
}

func uploadPath(name, id string) string { return path.Join(repoPath(name), "_uploads", id) }

func uploadDataPath(name, id string) string { return path.Join(uploadPath(name, id), "data") }

func uploadStartedAtPath(name, id string) string { return path.Join(uploadPath(name, id), "startedat") }

func uploadHashStateDir(name, id string, alg digest.Algorithm) string {
	return path.Join(uploadPath(name, id), "_berth", "hashstate", alg.String())
}

func referrersDir(name string, subject digest.Digest) string {
	return path.Join(repoPath(name), "_referrers", subject.Algorithm().String(), subject.Encoded())
}

func referrerLinkPath(name string, subject, d digest.Digest) string {
	return path.Join(referrersDir(name, subject), d.Algorithm().String(), d.Encoded(), "link")
}
