// Command mkbucket creates (or, with -delete, empties and removes) buckets
// on an S3 server for scripts/bench.sh, which runs registries on a MinIO
// server it starts on loopback.
//
//	mkbucket -endpoint 127.0.0.1:9000 [-timeout 60s] [-pid N] BUCKET...
//	mkbucket -endpoint 127.0.0.1:9000 -delete BUCKET...
//
// Creating waits until the server is live and accepts the request (MinIO
// answers 503 for a moment after it starts listening), retrying until
// -timeout; with -pid it gives up as soon as that process has exited. A
// bucket that already exists and is ours is fine. The credentials come from
// MINIO_ROOT_USER and MINIO_ROOT_PASSWORD (or -access-key / -secret-key),
// so they do not show in the process list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

func main() {
	endpoint := flag.String("endpoint", "", "host:port of the S3 API (plain HTTP)")
	accessKey := flag.String("access-key", os.Getenv("MINIO_ROOT_USER"), "access key [$MINIO_ROOT_USER]")
	secretKey := flag.String("secret-key", os.Getenv("MINIO_ROOT_PASSWORD"), "secret key [$MINIO_ROOT_PASSWORD]")
	region := flag.String("region", "us-east-1", "region of the buckets")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to keep trying")
	pid := flag.Int("pid", 0, "pid of the S3 server: stop waiting if it exits")
	del := flag.Bool("delete", false, "remove the buckets and everything in them instead of creating them")
	flag.Parse()

	if *endpoint == "" || flag.NArg() == 0 {
		fatalf("usage: mkbucket -endpoint HOST:PORT [-delete] BUCKET...")
	}
	for _, b := range flag.Args() {
		if err := s3utils.CheckValidBucketNameStrict(b); err != nil {
			fatalf("%s: %v", b, err)
		}
	}
	if *accessKey == "" || *secretKey == "" {
		fatalf("no credentials: set MINIO_ROOT_USER and MINIO_ROOT_PASSWORD (or -access-key, -secret-key)")
	}
	endpointHost := strings.TrimPrefix(*endpoint, "http://")
	c, err := minio.New(endpointHost, &minio.Options{
		Creds:  credentials.NewStaticV4(*accessKey, *secretKey, ""),
		Region: *region,
		// One try per request: the loop below retries, and keeps the error.
		MaxRetries: 1,
	})
	if err != nil {
		fatalf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	for _, b := range flag.Args() {
		if *del {
			err = removeBucket(ctx, c, b)
		} else {
			err = makeBucket(ctx, c, b, *region, *pid)
		}
		if err != nil {
			fatalf("%s: %v", b, err)
		}
	}
}

// makeBucket creates bucket, retrying while the server starts up.
func makeBucket(ctx context.Context, c *minio.Client, bucket, region string, pid int) error {
	var last error
	for {
		err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region})
		if err == nil {
			return nil
		}
		resp := minio.ToErrorResponse(err)
		switch {
		case resp.Code == "BucketAlreadyOwnedByYou":
			return nil
		case resp.Code != "" && resp.StatusCode < 500:
			// A definite answer (bad name, bad credentials, taken):
			// retrying will not help. Connection errors (no S3 answer)
			// and 5xx (MinIO still initialising) are retried.
			return err
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		if pid > 0 && processGone(pid) {
			return fmt.Errorf("server process %d exited (last error: %v)", pid, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %v (last error: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// removeBucket removes bucket with everything in it; a missing bucket is
// fine.
func removeBucket(ctx context.Context, c *minio.Client, bucket string) error {
	// MinIO removes a bucket with its objects in one request.
	err := c.RemoveBucketWithOptions(ctx, bucket, minio.RemoveBucketOptions{ForceDelete: true})
	if err == nil || minio.ToErrorResponse(err).Code == "NoSuchBucket" {
		return nil
	}
	// Other servers do not: remove the objects (and multipart uploads), then the bucket.
	objs := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for e := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("removing %s: %w", e.ObjectName, e.Err)
		}
	}
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			return u.Err
		}
		if err := c.RemoveIncompleteUpload(ctx, bucket, u.Key); err != nil {
			return err
		}
	}
	if err := c.RemoveBucket(ctx, bucket); err != nil {
		return errors.Join(errors.New("removing the bucket"), err)
	}
	return nil
}

// processGone reports whether pid no longer runs (absent, or a zombie).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mkbucket: "+format+"\n", args...)
	os.Exit(1)
}
