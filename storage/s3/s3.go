// Package s3 is the storage.Driver for Amazon S3 and S3-compatible object
// stores (MinIO, Ceph RGW, ...), built on github.com/minio/minio-go/v7.
//
// # Keys
//
// The storage path "/a/b" is the object key RootDirectory + "/a/b" without
// its leading slash (just "a/b" without a root directory). Directories are
// key prefixes: they exist while some key lies below them and are listed
// with the delimiter "/". This is the key layout of distribution's s3-aws
// driver, so a bucket written by registry:2 is served as it is (and the
// reverse, for files written with append=false and files moved into place).
//
// # Appends
//
// S3 objects cannot be appended to. A file that grows by appends (an upload
// session's data) is kept as hidden segment objects, one per committed
// append, named
//
//	<key>~seg~<offset as 20 decimal digits>
//
// and the file <key> is the concatenation of its segments, in offset order,
// when no plain object <key> exists. A plain object always wins over
// segments. "~" is not allowed in storage paths, so a segment key can never
// name a real file; List reports "<key>" for them and Stat, Reader and
// Writer(append=true) read their sizes from one ListObjects call. Move joins
// the segments server-side (UploadPartCopy) when they are large enough
// (every segment but the last at least 5 MiB) and otherwise streams them
// into a new object, so each byte of an upload is written twice at most:
// once as a segment, once by the copy into place.
//
// # Costs
//
// Stat of a plain object is one HEAD request; Reader of a plain object is
// one GET; Writer(append=false).Commit of a file smaller than one part is
// one PUT (PutContent too). Falling back to segments or directories costs
// one ListObjects (per 1,000 keys) more.
//
// # Retries
//
// minio-go retries each request (up to Params.MaxRetries attempts, 10 by
// default) with exponential backoff and full jitter (200 ms doubling to 1 s):
// network errors, 5xx answers including 503 SlowDown, 429, and the S3 error
// codes for throttling and internal errors. The driver sends request bodies
// as seekable in-memory buffers so that uploads are retried too, and a
// Reader whose connection breaks mid-stream resumes from where it stopped
// (same ETag only).
package s3

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-registry/berth/storage"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// DriverName is the name the driver reports and the config key it is
// configured under (storage.s3).
const DriverName = "s3"

const (
	// DefaultChunkSize is the part size when Params.ChunkSize is 0.
	DefaultChunkSize = 10 << 20
	// MinChunkSize is S3's minimum size of every part but the last.
	MinChunkSize = 5 << 20
	// MaxPartSize is S3's maximum part size (and of a single CopyObject).
	MaxPartSize = 5 << 30
	// MaxParts is S3's maximum number of parts of a multipart upload.
	MaxParts = 10000
	// DefaultMaxRetries is how many attempts minio-go makes per request.
	DefaultMaxRetries = 10
	// RedirectExpiry is how long a presigned redirect URL stays valid.
	RedirectExpiry = 20 * time.Minute
	// segSep separates a file's key from its segment offset.
	segSep = "~seg~"
	// offsetDigits is the width of a segment's zero-padded offset.
	offsetDigits = 20
	// deleteBatch is S3's maximum number of keys per DeleteObjects request.
	deleteBatch = 1000
)

// Params configure a Driver; they mirror storage.s3 in the configuration.
type Params struct {
	// AccessKey and SecretKey are static credentials. When AccessKey is
	// empty, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
	// are used.
	AccessKey string
	SecretKey string
	// Region is the bucket's region; when empty it is looked up once at
	// start (GetBucketLocation), defaulting to us-east-1.
	Region string
	// RegionEndpoint is the endpoint of an S3-compatible service, as a URL
	// ("http://127.0.0.1:9000") or host[:port]. Empty means AWS S3.
	RegionEndpoint string
	// Bucket is the bucket name (required).
	Bucket string
	// Secure uses HTTPS when RegionEndpoint has no scheme (a scheme wins).
	Secure bool
	// ForcePathStyle uses path-style URLs (endpoint/bucket/key); otherwise
	// minio-go picks virtual-host style where the endpoint supports it.
	ForcePathStyle bool
	// RootDirectory is a key prefix inside the bucket ("" for none).
	RootDirectory string
	// ChunkSize is the multipart part size in bytes; 0 means
	// DefaultChunkSize, otherwise at least MinChunkSize. It grows for very
	// large files (see PartSize).
	ChunkSize int64
	// RedirectEndpoint, when set, is the endpoint (URL or host[:port])
	// presigned redirect URLs point at, for clients that reach the store
	// under another name than the registry does.
	RedirectEndpoint string
	// Transport, when set, carries every request to the store (tests count
	// requests with it). Nil means minio-go's default transport.
	Transport http.RoundTripper
	// MaxRetries is the number of attempts per request; 0 means
	// DefaultMaxRetries and 1 disables retries.
	MaxRetries int
}

// Driver stores files as objects in one S3 bucket. It is safe for
// concurrent use.
type Driver struct {
	client   *minio.Client
	core     minio.Core
	redirect *minio.Client // presigns redirect URLs
	bucket   string
	prefix   string // "" or the root directory with a trailing "/"
	chunk    int64
	endpoint string // for error messages
}

var (
	_ storage.Driver        = (*Driver)(nil)
	_ storage.URLRedirector = (*Driver)(nil)
	_ storage.ContentPutter = (*Driver)(nil)
	_ storage.FileWriter    = (*writer)(nil)
)

// parseEndpoint turns a configured endpoint into minio-go's host[:port] and
// secure flag. A scheme decides secure; without one, secure is used.
func parseEndpoint(endpoint string, secure bool) (string, bool, error) {
	if endpoint == "" {
		return "s3.amazonaws.com", true, nil
	}
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return "", false, fmt.Errorf("invalid endpoint %q: %w", endpoint, err)
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			secure = true
		default:
			return "", false, fmt.Errorf("invalid endpoint %q: scheme must be http or https", endpoint)
		}
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return "", false, fmt.Errorf("invalid endpoint %q: want scheme://host[:port] without a path", endpoint)
		}
		return u.Host, secure, nil
	}
	if strings.ContainsAny(endpoint, "/?#") {
		return "", false, fmt.Errorf("invalid endpoint %q: want host[:port] or scheme://host[:port]", endpoint)
	}
	return endpoint, secure, nil
}

// New connects to the bucket described by p and checks that it exists and
// that the credentials are accepted.
func New(ctx context.Context, p Params) (*Driver, error) {
	if p.Bucket == "" {
		return nil, errors.New("storage.s3.bucket: must be set")
	}
	if err := s3utils.CheckValidBucketName(p.Bucket); err != nil {
		return nil, fmt.Errorf("storage.s3.bucket: %q: %w", p.Bucket, err)
	}
	chunk := cmp.Or(p.ChunkSize, DefaultChunkSize)
	if chunk < MinChunkSize || chunk > MaxPartSize {
		return nil, fmt.Errorf("storage.s3.chunksize %d is outside [%d (5 MiB), %d (5 GiB)]", chunk, MinChunkSize, MaxPartSize)
	}
	host, secure, err := parseEndpoint(p.RegionEndpoint, p.Secure)
	if err != nil {
		return nil, fmt.Errorf("storage.s3.regionendpoint: %w", err)
	}
	var creds *credentials.Credentials
	if p.AccessKey != "" {
		creds = credentials.NewStaticV4(p.AccessKey, p.SecretKey, "")
	} else {
		creds = credentials.NewEnvAWS()
	}
	noCreds := false
	if v, err := creds.Get(); err != nil || v.AccessKeyID == "" {
		noCreds = true // requests go out anonymous
	}
	lookup := minio.BucketLookupAuto
	if p.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	retries := cmp.Or(p.MaxRetries, DefaultMaxRetries)
	opts := func(region string) *minio.Options {
		return &minio.Options{
			Creds:        creds,
			Secure:       secure,
			Transport:    p.Transport,
			Region:       region,
			BucketLookup: lookup,
			MaxRetries:   retries,
		}
	}
	client, err := minio.New(host, opts(p.Region))
	if err != nil {
		return nil, fmt.Errorf("storage.s3: endpoint %s: %w", host, err)
	}
	d := &Driver{
		client:   client,
		core:     minio.Core{Client: client},
		redirect: client,
		bucket:   p.Bucket,
		chunk:    chunk,
		endpoint: host,
	}
	if root := strings.Trim(p.RootDirectory, "/"); root != "" {
		d.prefix = root + "/"
	}

	// minio-go looks the region up (once, then cached) without retrying:
	// do it here, with retries, so that a busy endpoint at start-up is no
	// failure and later requests find it cached.
	region := p.Region
	if region == "" {
		err := retryStart(ctx, retries, func() error {
			var err error
			region, err = client.GetBucketLocation(ctx, p.Bucket)
			return err
		})
		if err != nil {
			return nil, d.startError(err, noCreds)
		}
	}
	ok, err := client.BucketExists(ctx, p.Bucket)
	if err != nil {
		return nil, d.startError(err, noCreds)
	}
	if !ok {
		return nil, fmt.Errorf("storage.s3: bucket %q does not exist at %s (create it, or fix storage.s3.bucket / regionendpoint)", p.Bucket, host)
	}
	if p.RedirectEndpoint != "" {
		rhost, rsecure, err := parseEndpoint(p.RedirectEndpoint, secure)
		if err != nil {
			return nil, fmt.Errorf("storage.s3.redirectendpoint: %w", err)
		}
		ro := opts(region)
		ro.Secure = rsecure
		if d.redirect, err = minio.New(rhost, ro); err != nil {
			return nil, fmt.Errorf("storage.s3.redirectendpoint %s: %w", rhost, err)
		}
	}
	return d, nil
}

// retryStart calls fn up to attempts times while it fails with what looks
// transient (no S3 answer, 5xx, 429, 408), backing off as minio-go does.
func retryStart(ctx context.Context, attempts int, fn func() error) error {
	wait := 200 * time.Millisecond
	for i := 1; ; i++ {
		err := fn()
		if err == nil || i >= attempts || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true // no answer: network error
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return true
	}
	return resp.Code == "SlowDown" || resp.Code == "RequestTimeout" || resp.Code == "InternalError"
}

// startError explains a failure of the start-up checks.
func (d *Driver) startError(err error, noCreds bool) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case noCreds && (resp.StatusCode == http.StatusForbidden || resp.Code == "AccessDenied"):
		return fmt.Errorf("storage.s3: bucket %q at %s: access denied: no credentials (set storage.s3.accesskey/secretkey or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY): %w", d.bucket, d.endpoint, err)
	case resp.StatusCode == http.StatusForbidden, resp.Code == "AccessDenied",
		resp.Code == "InvalidAccessKeyId", resp.Code == "SignatureDoesNotMatch":
		return fmt.Errorf("storage.s3: bucket %q at %s: access denied: check storage.s3.accesskey/secretkey (%s): %w", d.bucket, d.endpoint, cmp.Or(resp.Code, http.StatusText(resp.StatusCode)), err)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("storage.s3: bucket %q does not exist at %s (create it, or fix storage.s3.bucket / regionendpoint): %w", d.bucket, d.endpoint, err)
	}
	return fmt.Errorf("storage.s3: cannot reach bucket %q at %s: %w", d.bucket, d.endpoint, err)
}

// Name returns "s3".
func (d *Driver) Name() string { return DriverName }

// Bucket returns the bucket name.
func (d *Driver) Bucket() string { return d.bucket }

// ---- keys ----

// key maps a checked storage path to its object key.
func (d *Driver) key(p string) string {
	if p == "/" {
		return d.prefix
	}
	return d.prefix + p[1:]
}

// dirPrefix is the key prefix of everything below the directory p.
func (d *Driver) dirPrefix(p string) string {
	if p == "/" {
		return d.prefix
	}
	return d.prefix + p[1:] + "/"
}

func segKey(key string, off int64) string {
	return fmt.Sprintf("%s%s%0*d", key, segSep, offsetDigits, off)
}

// parseSegKey splits a segment key into its file key and offset.
func parseSegKey(k string) (string, int64, bool) {
	i := strings.LastIndex(k, segSep)
	if i < 0 {
		return "", 0, false
	}
	digits := k[i+len(segSep):]
	if len(digits) != offsetDigits {
		return "", 0, false
	}
	off, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || off < 0 {
		return "", 0, false
	}
	return k[:i], off, true
}

// checkFile checks p and refuses the root, which is not a file.
func checkFile(p string) error {
	if err := storage.CheckPath(p); err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("%w: %q is the root directory", storage.ErrInvalidPath, p)
	}
	return nil
}

// ---- errors ----

func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket" && resp.Code != "NoSuchUpload")
}

func isInvalidRange(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable
}

// wrap describes a failed S3 operation on p, mapping "no such key" to
// storage.ErrNotFound.
func (d *Driver) wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return storage.NotFound(p)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3: %s %s: %w", op, p, err)
	}
	return fmt.Errorf("s3: %s %s (bucket %q): %w", op, p, d.bucket, err)
}

// ---- probing a path ----

// segment is one committed append of a segmented file.
type segment struct {
	key  string
	off  int64
	size int64
	etag string
	mod  time.Time
}

// probe is what one delimited listing at a key tells about it.
type probe struct {
	plain *minio.ObjectInfo // the plain object <key>, if any
	segs  []segment         // all segments, by offset
	chain []segment         // the contiguous segments from offset 0
	size  int64             // end of chain
	isDir bool              // keys exist below <key>/
}

// segmented reports whether the file is its segments (no plain object).
func (pr *probe) segmented() bool { return pr.plain == nil && len(pr.chain) > 0 }

// isFile reports whether a file exists at the key.
func (pr *probe) isFile() bool { return pr.plain != nil || len(pr.chain) > 0 }

// fileSize is the file's size (isFile must hold).
func (pr *probe) fileSize() int64 {
	if pr.plain != nil {
		return pr.plain.Size
	}
	return pr.size
}

// modTime is the file's modification time (isFile must hold).
func (pr *probe) modTime() time.Time {
	if pr.plain != nil {
		return pr.plain.LastModified
	}
	var t time.Time
	for _, s := range pr.chain {
		if s.mod.After(t) {
			t = s.mod
		}
	}
	return t
}

// stale returns the segments that are not part of the file.
func (pr *probe) stale() []segment {
	if pr.plain != nil {
		return pr.segs
	}
	var out []segment
	for _, s := range pr.segs {
		if !slices.ContainsFunc(pr.chain, func(c segment) bool { return c.key == s.key }) {
			out = append(out, s)
		}
	}
	return out
}

// allKeys returns every object key that makes up the file (plain and
// segments, stale ones included), segment 0 first.
func (pr *probe) allKeys() []string {
	var keys []string
	for _, s := range pr.segs {
		keys = append(keys, s.key)
	}
	if pr.plain != nil {
		keys = append(keys, pr.plain.Key)
	}
	return keys
}

// chainSegments picks, from segments sorted by offset, the contiguous run
// starting at offset 0. A segment starting inside the run (left over by a
// concurrent or interrupted append) is skipped; a gap ends the run.
func chainSegments(segs []segment) ([]segment, int64) {
	var chain []segment
	var end int64
	for _, s := range segs {
		switch {
		case s.off < end:
			continue
		case s.off > end:
			return chain, end
		}
		chain = append(chain, s)
		end += s.size
	}
	return chain, end
}

// probe lists the keys starting with key, delimited at "/": the plain
// object, its segments and whether key is a directory, in one request
// (more only when over 1,000 sibling names share the prefix).
func (d *Driver) probe(ctx context.Context, key string) (*probe, error) {
	pr := &probe{}
	noOwner := false
	segPrefix := key + segSep
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: key, FetchOwner: &noOwner}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		switch {
		case obj.Key == key:
			o := obj
			pr.plain = &o
		case obj.Key == key+"/":
			pr.isDir = true
		case strings.HasPrefix(obj.Key, segPrefix):
			if k, off, ok := parseSegKey(obj.Key); ok && k == key {
				pr.segs = append(pr.segs, segment{key: obj.Key, off: off, size: obj.Size, etag: obj.ETag, mod: obj.LastModified})
			}
		}
	}
	slices.SortFunc(pr.segs, func(a, b segment) int { return cmp.Compare(a.off, b.off) })
	pr.chain, pr.size = chainSegments(pr.segs)
	return pr, nil
}

// ---- Driver ----

// Stat describes p: one HEAD request for a plain object, plus one listing
// for segmented files, directories and missing paths.
func (d *Driver) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	if err := storage.CheckPath(p); err != nil {
		return storage.FileInfo{}, err
	}
	if p == "/" {
		return storage.FileInfo{Path: p, IsDir: true}, nil
	}
	key := d.key(p)
	info, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return storage.FileInfo{Path: p, Size: info.Size, ModTime: info.LastModified}, nil
	}
	if !isNotFound(err) {
		return storage.FileInfo{}, d.wrap("stat", p, err)
	}
	pr, err := d.probe(ctx, key)
	if err != nil {
		return storage.FileInfo{}, d.wrap("stat", p, err)
	}
	switch {
	case pr.isFile():
		return storage.FileInfo{Path: p, Size: pr.fileSize(), ModTime: pr.modTime()}, nil
	case pr.isDir:
		return storage.FileInfo{Path: p, IsDir: true}, nil
	}
	return storage.FileInfo{}, storage.NotFound(p)
}

// StatFile describes p when it is a file written whole (with
// append=false, PutContent or Move), in exactly one HEAD request, found or
// not: segmented files (still being appended to) and directories are
// ErrNotFound here. Callers that know a path is never appended to (the
// registry's blobs and links) use it to pay one request for a missing path
// instead of two.
func (d *Driver) StatFile(ctx context.Context, p string) (storage.FileInfo, error) {
	if err := checkFile(p); err != nil {
		return storage.FileInfo{}, err
	}
	info, err := d.client.StatObject(ctx, d.bucket, d.key(p), minio.StatObjectOptions{})
	if err != nil {
		return storage.FileInfo{}, d.wrap("stat", p, err)
	}
	return storage.FileInfo{Path: p, Size: info.Size, ModTime: info.LastModified}, nil
}

// List returns the direct children of the directory p.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := storage.CheckPath(p); err != nil {
		return nil, err
	}
	prefix := d.dirPrefix(p)
	base := strings.TrimSuffix(p, "/")
	seen := map[string]bool{}
	// Segmented files are listed only when their first segment exists.
	segFiles := map[string]bool{}
	var out []string
	add := func(name string) {
		if name == "" || seen[name] || strings.Contains(name, "/") || storage.CheckPath("/"+name) != nil {
			return // not a valid path component (written by some other tool)
		}
		seen[name] = true
		out = append(out, base+"/"+name)
	}
	found := false
	noOwner := false
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, FetchOwner: &noOwner}) {
		if obj.Err != nil {
			return nil, d.wrap("list", p, obj.Err)
		}
		found = true
		name := strings.TrimPrefix(obj.Key, prefix)
		if dir, ok := strings.CutSuffix(name, "/"); ok {
			add(dir)
			continue
		}
		if k, off, ok := parseSegKey(name); ok {
			if off == 0 {
				segFiles[k] = true
			}
			continue
		}
		add(name)
	}
	for k := range segFiles {
		add(k)
	}
	if !found && p != "/" {
		return nil, storage.NotFound(p)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// Reader opens p at offset: one GET for a plain object.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := storage.CheckPath(p); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("%w: %d: %s", storage.ErrInvalidOffset, offset, p)
	}
	if p == "/" {
		return nil, storage.NotFound(p)
	}
	key := d.key(p)
	body, info, err := d.getObject(ctx, key, offset, -1, "")
	switch {
	case err == nil:
		end := int64(-1) // unknown without a Content-Length
		if info.Size >= 0 {
			end = offset + info.Size
		}
		return &objectReader{d: d, ctx: ctx, key: key, etag: info.ETag, pos: offset, end: end, body: body}, nil
	case isInvalidRange(err):
		// offset >= size: the end of the file is fine, beyond it is not.
		st, serr := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
		if serr != nil {
			return nil, d.wrap("read", p, serr)
		}
		if offset == st.Size {
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, fmt.Errorf("%w: %d (size %d): %s", storage.ErrInvalidOffset, offset, st.Size, p)
	case !isNotFound(err):
		return nil, d.wrap("read", p, err)
	}
	pr, err := d.probe(ctx, key)
	if err != nil {
		return nil, d.wrap("read", p, err)
	}
	if pr.plain != nil { // appeared since the GET
		return d.Reader(ctx, p, offset)
	}
	if !pr.segmented() {
		return nil, storage.NotFound(p)
	}
	if offset > pr.size {
		return nil, fmt.Errorf("%w: %d (size %d): %s", storage.ErrInvalidOffset, offset, pr.size, p)
	}
	return &segmentReader{d: d, ctx: ctx, segs: pr.chain, pos: offset}, nil
}

// getObject GETs key from offset; length < 0 reads to the end. etag, when
// set, must match.
func (d *Driver) getObject(ctx context.Context, key string, offset, length int64, etag string) (io.ReadCloser, minio.ObjectInfo, error) {
	var opts minio.GetObjectOptions
	if etag != "" {
		if err := opts.SetMatchETag(etag); err != nil {
			return nil, minio.ObjectInfo{}, err
		}
	}
	switch {
	case length > 0:
		if err := opts.SetRange(offset, offset+length-1); err != nil {
			return nil, minio.ObjectInfo{}, err
		}
	case offset > 0:
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, minio.ObjectInfo{}, err
		}
	}
	body, info, _, err := d.core.GetObject(ctx, d.bucket, key, opts)
	return body, info, err
}

// Writer returns a writer for p. With append=false nothing is sent before
// the first full part; with append=true one listing finds the current size.
func (d *Driver) Writer(ctx context.Context, p string, appendMode bool) (storage.FileWriter, error) {
	if err := checkFile(p); err != nil {
		return nil, err
	}
	key := d.key(p)
	if !appendMode {
		return d.newWriter(ctx, p, key), nil
	}
	pr, err := d.probe(ctx, key)
	if err != nil {
		return nil, d.wrap("open for append", p, err)
	}
	if !pr.isFile() && pr.isDir {
		return nil, fmt.Errorf("%w: %s is a directory", storage.ErrNotFound, p)
	}
	base := pr.fileSize()
	if !pr.isFile() {
		base = 0
	}
	w := d.newWriter(ctx, p, segKey(key, base))
	w.appendMode = true
	w.base = base
	w.exists = pr.isFile()
	w.plain = pr.plain
	for _, s := range pr.stale() {
		if s.key != w.key {
			w.stale = append(w.stale, s.key)
		}
	}
	return w, nil
}

// PutContent stores a small file with a single PUT.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := checkFile(p); err != nil {
		return err
	}
	if err := d.putObject(ctx, d.key(p), content); err != nil {
		return d.wrap("put", p, err)
	}
	return nil
}

func (d *Driver) putObject(ctx context.Context, key string, content []byte) error {
	_, err := d.core.PutObject(ctx, d.bucket, key, newBytesReader(content), int64(len(content)), "", "", minio.PutObjectOptions{})
	return err
}

// Move moves the file at src to dst: a server-side copy and a delete. A
// segmented src is joined server-side when every segment but the last is at
// least 5 MiB, and streamed into dst otherwise.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := checkFile(src); err != nil {
		return err
	}
	if err := checkFile(dst); err != nil {
		return err
	}
	skey, dkey := d.key(src), d.key(dst)
	pr, err := d.probe(ctx, skey)
	if err != nil {
		return d.wrap("move", src, err)
	}
	if !pr.isFile() {
		return storage.NotFound(src)
	}
	if src == dst {
		return nil
	}
	var parts []copySource
	if pr.plain != nil {
		parts = []copySource{{key: pr.plain.Key, etag: pr.plain.ETag, size: pr.plain.Size}}
	} else {
		for _, s := range pr.chain {
			parts = append(parts, copySource{key: s.key, etag: s.etag, size: s.size})
		}
	}
	if err := d.copyInto(ctx, dkey, parts); err != nil {
		return d.wrap("move "+src+" to", dst, err)
	}
	if err := d.removeKeys(ctx, pr.allKeys()); err != nil {
		return d.wrap("move: remove source", src, err)
	}
	return nil
}

// Delete removes the file or tree at p.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := checkFile(p); err != nil {
		return err
	}
	key := d.key(p)
	pr, err := d.probe(ctx, key)
	if err != nil {
		return d.wrap("delete", p, err)
	}
	if len(pr.segs) == 0 && pr.plain == nil && !pr.isDir {
		return storage.NotFound(p)
	}
	if err := d.removeKeys(ctx, pr.allKeys()); err != nil {
		return d.wrap("delete", p, err)
	}
	if pr.isDir {
		if err := d.removePrefix(ctx, key+"/"); err != nil {
			return d.wrap("delete", p, err)
		}
	}
	return nil
}

// removeKeys deletes keys: one DeleteObject for a single key, batches of
// DeleteObjects otherwise.
func (d *Driver) removeKeys(ctx context.Context, keys []string) error {
	switch len(keys) {
	case 0:
		return nil
	case 1:
		return d.client.RemoveObject(ctx, d.bucket, keys[0], minio.RemoveObjectOptions{})
	}
	for batch := range slices.Chunk(keys, deleteBatch) {
		ch := make(chan minio.ObjectInfo, len(batch))
		for _, k := range batch {
			ch <- minio.ObjectInfo{Key: k}
		}
		close(ch)
		var first error
		for res := range d.client.RemoveObjects(ctx, d.bucket, ch, minio.RemoveObjectsOptions{}) {
			if res.Err != nil && first == nil && !isNotFound(res.Err) {
				first = fmt.Errorf("%s: %w", res.ObjectName, res.Err)
			}
		}
		if first != nil {
			return first
		}
	}
	return nil
}

// removePrefix deletes every key below prefix.
func (d *Driver) removePrefix(ctx context.Context, prefix string) error {
	noOwner := false
	var keys []string
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, FetchOwner: &noOwner}) {
		if obj.Err != nil {
			return obj.Err
		}
		keys = append(keys, obj.Key)
		if len(keys) == deleteBatch {
			if err := d.removeKeys(ctx, keys); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	return d.removeKeys(ctx, keys)
}

// RedirectURL returns a presigned URL for GET or HEAD of the file at p,
// valid for RedirectExpiry. It sends no request.
func (d *Driver) RedirectURL(ctx context.Context, method, p string) (string, error) {
	if err := checkFile(p); err != nil {
		return "", err
	}
	var u *url.URL
	var err error
	switch method {
	case http.MethodGet:
		u, err = d.redirect.PresignedGetObject(ctx, d.bucket, d.key(p), RedirectExpiry, nil)
	case http.MethodHead:
		u, err = d.redirect.PresignedHeadObject(ctx, d.bucket, d.key(p), RedirectExpiry, nil)
	default:
		return "", fmt.Errorf("s3: redirect: unsupported method %s", method)
	}
	if err != nil {
		return "", d.wrap("presign", p, err)
	}
	return u.String(), nil
}

// String describes the driver for logs.
func (d *Driver) String() string {
	return "s3://" + d.bucket + "/" + path.Clean("/" + d.prefix)[1:]
}
