// Command regbench is a load generator for OCI distribution registries.
//
// It pushes, pulls and polls a registry through the plain OCI distribution
// HTTP API and prints one JSON line of results on stdout, so that several
// registries (Berth and the anchors it is compared with) can be measured
// with the same client, one after the other. scripts/bench.sh drives it.
//
// Modes:
//
//	regbench -addr 127.0.0.1:5000 -pid 1234 -name berth   run the workloads
//	regbench -wait 127.0.0.1:5000 [-timeout 20s] [-pid N]  wait until GET /v2/ answers
//	regbench -free-port                                    print a free loopback TCP port
//	regbench -table results.jsonl [-subject berth]         format results as a table
//	                                                       (several lines per registry: medians)
//
// Only the standard library is used.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "", "registry address, host:port or http://host:port")
	flag.IntVar(&cfg.pid, "pid", 0, "pid of the registry process; its peak RSS (VmHWM) is read at the end (with -wait: stop waiting if it exits)")
	flag.StringVar(&cfg.name, "name", "registry", "name of the registry in the results")
	flag.StringVar(&cfg.repo, "repo", "regbench", "repository name prefix")
	flag.IntVar(&cfg.blobs, "blobs", 16, "number of large blobs per push variant")
	flag.IntVar(&cfg.blobMiB, "blob-mib", 64, "size of each large blob in MiB")
	flag.IntVar(&cfg.chunkMiB, "chunk-mib", 8, "PATCH chunk size in MiB for the chunked push")
	flag.IntVar(&cfg.pushConc, "push-concurrency", 4, "concurrent uploaders / downloaders for push and pull")
	flag.IntVar(&cfg.pullRounds, "pull-rounds", 2, "number of pull rounds over all pushed blobs")
	flag.IntVar(&cfg.smallBlobs, "small-blobs", 16, "number of small blobs for the HEAD workload")
	flag.IntVar(&cfg.smallSize, "small-size", 1024, "size of each small blob in bytes")
	flag.IntVar(&cfg.tags, "tags", 4, "number of tags the test manifest is pushed under")
	flag.IntVar(&cfg.reqConc, "concurrency", 16, "concurrency of the HEAD and manifest GET workloads")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "warm-up before each request-rate workload (not measured)")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured duration of each request-rate workload")
	flag.IntVar(&cfg.verify, "verify", 2, "per push variant, how many blobs to GET back and check by sha256 (untimed)")

	waitAddr := flag.String("wait", "", "only wait until GET http://ADDR/v2/ answers (any HTTP status), then exit")
	timeout := flag.Duration("timeout", 20*time.Second, "timeout for -wait")
	freePort := flag.Bool("free-port", false, "only print a free TCP port on 127.0.0.1")
	table := flag.String("table", "", "only format the JSON lines in this file as a table")
	subject := flag.String("subject", "berth", "with -table: the registry whose ratios to the others are printed")
	flag.Parse()

	switch {
	case *freePort:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fatalf("free-port: %v", err)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		return
	case *waitAddr != "":
		if err := waitReady(baseURL(*waitAddr), *timeout, cfg.pid); err != nil {
			fatalf("%v", err)
		}
		return
	case *table != "":
		if err := printTable(os.Stdout, *table, *subject); err != nil {
			fatalf("table: %v", err)
		}
		return
	}

	if cfg.addr == "" {
		fatalf("-addr is required")
	}
	if cfg.blobs < 1 || cfg.blobMiB < 1 || cfg.chunkMiB < 1 || cfg.pushConc < 1 || cfg.reqConc < 1 || cfg.smallBlobs < 1 || cfg.tags < 1 {
		fatalf("counts, sizes and concurrencies must be at least 1")
	}
	res := run(&cfg)
	line, err := json.Marshal(res)
	if err != nil {
		fatalf("marshal: %v", err)
	}
	fmt.Println(string(line))
	if res.Failed != "" || res.ErrorsTotal > 0 {
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "regbench: "+format+"\n", args...)
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "regbench: "+format+"\n", args...)
}

// waitReady polls GET /v2/ until the server answers with any HTTP status
// (a registry with auth answers 401, which still means it is up). With
// pid > 0 it gives up as soon as that process has exited.
func waitReady(base string, timeout time.Duration, pid int) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(base + "/v2/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		last = err
		if pid > 0 && processGone(pid) {
			return fmt.Errorf("process %d exited before %s/v2/ answered", pid, base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s/v2/ did not answer within %v: %v", base, timeout, last)
}

// processGone reports whether pid no longer runs (absent, or a zombie
// waiting to be reaped by its parent).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		st := s[i+2]
		return st == 'Z' || st == 'X'
	}
	return false
}
