package store

import (
	"regexp"

	"github.com/distribution/reference"
)

// Repository names follow the OCI distribution spec's grammar (the path part
// of a distribution/reference name): lower-case components separated by
// "/", never "." or ".." nor anything starting with "_", so a valid name is
// always a safe storage path.
const pathComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`

var (
	anchoredName = regexp.MustCompile(`^` + pathComponent + `(?:/` + pathComponent + `)*$`)
	anchoredTag  = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
)
