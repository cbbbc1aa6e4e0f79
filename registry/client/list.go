package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Ping checks that registry serves the distribution API (GET /v2/) and
// that the configured credentials are accepted: a Basic challenge is
// answered with them, a Bearer challenge by fetching a token without scope
// (as `docker login` does). It is what `pull-run login` calls before saving
// credentials.
func (c *Client) Ping(ctx context.Context, registry string) error {
	registry = NormalizeRegistry(registry)
	const op = "checking registry"
	resp, err := c.do(ctx, &request{method: http.MethodGet, registry: registry, target: "/v2/", op: op, ref: registry})
	if err != nil {
		return err
	}
	if err := expectStatus(resp, op, registry, http.StatusOK); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// maxListPages bounds Link pagination, against a server looping forever.
const maxListPages = 10000

// Tags lists the tags of repository repo (its tag and digest are
// ignored), following Link rel="next" pagination.
func (c *Client) Tags(ctx context.Context, repo Reference) ([]string, error) {
	if err := repo.validate(); err != nil {
		return nil, err
	}
	var page struct {
		Tags []string `json:"tags"`
	}
	out := []string{}
	err := c.paginate(ctx, repo.Registry, "/v2/"+repo.Repository+"/tags/list",
		[]string{repoScope(repo.Repository, false)}, "listing tags of", repo.Name(),
		func() any { page.Tags = nil; return &page }, func() { out = append(out, page.Tags...) })
	return out, err
}

// Catalog lists the repositories of registry (GET /v2/_catalog), following
// Link pagination. Many public registries do not allow it.
func (c *Client) Catalog(ctx context.Context, registry string) ([]string, error) {
	registry = NormalizeRegistry(registry)
	var page struct {
		Repositories []string `json:"repositories"`
	}
	out := []string{}
	err := c.paginate(ctx, registry, "/v2/_catalog", []string{"registry:catalog:*"}, "listing repositories of", registry,
		func() any { page.Repositories = nil; return &page }, func() { out = append(out, page.Repositories...) })
	return out, err
}

// paginate GETs target and the pages its Link headers point to, decoding
// each into fresh() and calling collect after each page.
func (c *Client) paginate(ctx context.Context, registry, target string, scopes []string, op, ref string, fresh func() any, collect func()) error {
	seen := map[string]bool{}
	for pages := 0; target != ""; pages++ {
		if pages >= maxListPages || seen[target] {
			return fmt.Errorf("%s %s: %w: pagination does not end", op, ref, ErrInvalidResponse)
		}
		seen[target] = true
		resp, err := c.do(ctx, &request{method: http.MethodGet, registry: registry, target: target, scopes: scopes, op: op, ref: ref,
			header: http.Header{"Accept": {"application/json"}}})
		if err != nil {
			return err
		}
		if err := expectStatus(resp, op, ref, http.StatusOK); err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: %w", op, ref, err)
		}
		if err := json.Unmarshal(body, fresh()); err != nil {
			return fmt.Errorf("%s %s: %w: %s", op, ref, ErrInvalidResponse, describeBody(resp.Header.Get("Content-Type"), body))
		}
		collect()
		next := nextLink(resp.Header.Values("Link"))
		target = ""
		if next != "" {
			u, err := resp.Request.URL.Parse(next)
			if err != nil {
				return fmt.Errorf("%s %s: %w: bad Link %q", op, ref, ErrInvalidResponse, sanitize(next, 200))
			}
			if !strings.EqualFold(u.Host, apiHost(registry)) {
				return fmt.Errorf("%s %s: %w: Link to another host %q", op, ref, ErrInvalidResponse, u.Host)
			}
			target = u.String()
		}
	}
	return nil
}

// nextLink returns the URL of the rel="next" entry of Link headers
// (RFC 8288): `<url>; rel="next"`.
func nextLink(headers []string) string {
	for _, h := range headers {
		for h != "" {
			i := strings.IndexByte(h, '<')
			if i < 0 {
				break
			}
			j := strings.IndexByte(h[i:], '>')
			if j < 0 {
				break
			}
			target := h[i+1 : i+j]
			rest := h[i+j+1:]
			params := rest
			if k := strings.IndexByte(rest, '<'); k >= 0 {
				params = rest[:k]
			}
			for _, p := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "rel") {
					for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(v), `",`)) {
						if strings.EqualFold(rel, "next") {
							return target
						}
					}
				}
			}
			h = rest
		}
	}
	return ""
}
