package main

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	addr, name, repo string
	pid              int
	blobs, blobMiB   int
	chunkMiB         int
	pushConc         int
	pullRounds       int
	smallBlobs       int
	smallSize        int
	tags             int
	reqConc          int
	warmup, duration time.Duration
	verify           int
}

// result is the JSON line regbench prints. Rates use MB = 10^6 bytes;
// peak RSS is in MiB. A line written by scripts/bench.sh for a registry
// that could not be built or started has only name and failed.
type result struct {
	Name     string `json:"name"`
	Addr     string `json:"addr,omitempty"`
	Failed   string `json:"failed,omitempty"`
	Started  string `json:"started,omitempty"`
	Blobs    int    `json:"blobs,omitempty"`
	BlobMiB  int    `json:"blob_mib,omitempty"`
	ChunkMiB int    `json:"chunk_mib,omitempty"`

	PushMBps        float64   `json:"push_mbps"`
	PushChunkedMBps float64   `json:"push_chunked_mbps"`
	PullMBps        float64   `json:"pull_mbps"`
	PullRoundsMBps  []float64 `json:"pull_rounds_mbps,omitempty"`

	HeadRPS   float64 `json:"head_rps"`
	HeadP50Ms float64 `json:"head_p50_ms"`
	HeadP99Ms float64 `json:"head_p99_ms"`

	ManifestRPS   float64 `json:"manifest_rps"`
	ManifestP50Ms float64 `json:"manifest_p50_ms"`
	ManifestP99Ms float64 `json:"manifest_p99_ms"`

	PeakRSSMiB float64 `json:"peak_rss_mib"`

	// CPU is, per phase, the wall time and the CPU seconds used by
	// regbench and by the server: with both on the same cores it shows
	// whether the load generator could be the bottleneck.
	CPU map[string]phaseCPU `json:"cpu,omitempty"`

	Errors      map[string]int64  `json:"errors,omitempty"`
	ErrorsTotal int64             `json:"errors_total"`
	FirstErrors map[string]string `json:"first_errors,omitempty"`
	ElapsedS    float64           `json:"elapsed_s,omitempty"`
}

// errorLog counts errors per phase and keeps the first message of each.
type errorLog struct {
	mu     sync.Mutex
	counts map[string]int64
	first  map[string]string
}

func newErrorLog() *errorLog {
	return &errorLog{counts: map[string]int64{}, first: map[string]string{}}
}

func (e *errorLog) add(phase string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts[phase]++
	if _, ok := e.first[phase]; !ok {
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		e.first[phase] = msg
		logf("%s: error: %s", phase, msg)
	}
}

// blob is one pre-generated blob.
type blob struct {
	data   []byte
	digest string
}

func (b *blob) size() int64 { return int64(len(b.data)) }

// fillRandom fills p with fresh pseudo-random bytes: AES-CTR keystream
// under a random key, which is fast enough not to matter and differs on
// every call (so no two blobs, and no two runs, share content).
func fillRandom(p []byte) {
	var key [32]byte
	var iv [aes.BlockSize]byte
	rand.Read(key[:])
	rand.Read(iv[:])
	blk, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	clear(p)
	cipher.NewCTR(blk, iv[:]).XORKeyStream(p, p)
}

// parallel runs fn(i) for i in [0, n) on up to workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

func makeBlobs(n, size int) []*blob {
	bs := make([]*blob, n)
	parallel(n, runtime.GOMAXPROCS(0), func(i int) {
		b := &blob{data: make([]byte, size)}
		fillRandom(b.data)
		b.digest = sha256Digest(b.data)
		bs[i] = b
	})
	return bs
}

// refresh gives each blob new content (a new random prefix) and digest.
func refresh(bs []*blob) {
	parallel(len(bs), runtime.GOMAXPROCS(0), func(i int) {
		fillRandom(bs[i].data[:min(64, len(bs[i].data))])
		bs[i].digest = sha256Digest(bs[i].data)
	})
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return round1(float64(bytes) / 1e6 / d.Seconds())
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// pushAll pushes blobs with concurrency workers and returns the bytes of
// the blobs that were pushed successfully, the wall time, and those blobs.
func pushAll(bs []*blob, workers int, errs *errorLog, phase string, push func(b *blob) error) (int64, time.Duration, []*blob) {
	ok := make([]bool, len(bs))
	var bytes atomic.Int64
	start := time.Now()
	parallel(len(bs), workers, func(i int) {
		if err := push(bs[i]); err != nil {
			errs.add(phase, err)
			return
		}
		ok[i] = true
		bytes.Add(bs[i].size())
	})
	d := time.Since(start)
	var pushed []*blob
	for i, b := range bs {
		if ok[i] {
			pushed = append(pushed, b)
		}
	}
	return bytes.Load(), d, pushed
}

// pulled is what the pull rounds GET: a digest and its expected size.
type pulled struct {
	digest string
	size   int64
}

// verifyBlobs GETs back up to n of the pushed blobs and checks their
// sha256 (untimed, to catch a registry that stores wrong bytes).
func verifyBlobs(c *client, repo string, bs []*blob, n int, errs *errorLog, phase string) {
	if n <= 0 || len(bs) == 0 {
		return
	}
	// Evenly spaced, first and last included.
	var idx []int
	for k := range min(n, len(bs)) {
		idx = append(idx, k*(len(bs)-1)/max(1, min(n, len(bs))-1))
	}
	idx = slices.Compact(idx)
	buf := make([]byte, copyBufferBytes)
	for _, i := range idx {
		h := sha256.New()
		if _, err := c.getBlob(repo, bs[i].digest, bs[i].size(), h, buf); err != nil {
			errs.add(phase, err)
			continue
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != bs[i].digest {
			errs.add(phase, fmt.Errorf("blob %s: content read back has digest %s", bs[i].digest, got))
		}
	}
}

// loadResult is the outcome of a fixed-duration request-rate workload.
type loadResult struct {
	rps, p50ms, p99ms float64
	ok                int
}

// runLoad runs fn on conc workers for warmup+dur. Only requests started
// inside the measured window count; every latency of a successful request
// in it is kept, merged and sorted for the percentiles.
func runLoad(conc int, warmup, dur time.Duration, errs *errorLog, phase string, fn func(worker, i int) error) loadResult {
	start := time.Now()
	from := start.Add(warmup)
	until := from.Add(dur)
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<15)
			for i := w; ; i++ {
				t0 := time.Now()
				if !t0.Before(until) {
					break
				}
				err := fn(w, i)
				lat := time.Since(t0)
				if err != nil {
					errs.add(phase, err)
					continue
				}
				if !t0.Before(from) {
					l = append(l, lat)
				}
			}
			lats[w] = l
		})
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := loadResult{ok: len(all), rps: round1(float64(len(all)) / dur.Seconds())}
	if len(all) > 0 {
		r.p50ms = round3(percentile(all, 0.50).Seconds() * 1000)
		r.p99ms = round3(percentile(all, 0.99).Seconds() * 1000)
	}
	return r
}

// percentile returns the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// imageManifest builds a small OCI image manifest for one config blob
// and one layer blob.
func imageManifest(cfg, layer *blob) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{
		SchemaVersion: 2,
		MediaType:     mtOCIManifest,
		Config:        desc{mtOCIConfig, cfg.digest, cfg.size()},
		Layers:        []desc{{mtOCILayer, layer.digest, layer.size()}},
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

type phaseCPU struct {
	WallS      float64 `json:"wall_s"`
	ClientCPUS float64 `json:"client_cpu_s"`
	ServerCPUS float64 `json:"server_cpu_s,omitempty"`
}

type cpuMeter struct {
	pid            int
	t              time.Time
	client, server float64
}

func startCPU(pid int) cpuMeter {
	return cpuMeter{pid: pid, t: time.Now(), client: selfCPUSeconds(), server: procCPUSeconds(pid)}
}

func (m cpuMeter) stop() phaseCPU {
	return phaseCPU{
		WallS:      round3(time.Since(m.t).Seconds()),
		ClientCPUS: round3(selfCPUSeconds() - m.client),
		ServerCPUS: round3(procCPUSeconds(m.pid) - m.server),
	}
}

func recordCPU(res *result, phase string, m cpuMeter) {
	p := m.stop()
	res.CPU[phase] = p
	logf("%s: %s: cpu seconds over %.2fs wall: regbench %.2f, server %.2f", res.Name, phase, p.WallS, p.ClientCPUS, p.ServerCPUS)
}

func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// procCPUSeconds reads utime+stime of pid from /proc/PID/stat, assuming
// the usual 100 clock ticks per second; 0 if pid is 0 or unreadable.
func procCPUSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // state is f[0]; utime, stime are fields 14, 15 of the line
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// peakRSSMiB reads VmHWM of a process from /proc/PID/status.
func peakRSSMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fs := strings.Fields(rest) // "123456 kB"
			if len(fs) == 0 {
				break
			}
			kb, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return round1(float64(kb) / 1024), nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func run(cfg *config) *result {
	t0 := time.Now()
	res := &result{
		Name:     cfg.name,
		Addr:     cfg.addr,
		Started:  t0.UTC().Format(time.RFC3339),
		Blobs:    cfg.blobs,
		BlobMiB:  cfg.blobMiB,
		ChunkMiB: cfg.chunkMiB,
	}
	errs := newErrorLog()
	c := newClient(cfg.addr, max(cfg.pushConc, cfg.reqConc))
	defer c.close()
	if err := waitReady(c.base, 10*time.Second, cfg.pid); err != nil {
		res.Failed = err.Error()
		return res
	}

	blobRepo := cfg.repo + "/blobs"
	size := cfg.blobMiB << 20
	chunk := cfg.chunkMiB << 20

	logf("%s: generating %d x %d MiB blobs", cfg.name, cfg.blobs, cfg.blobMiB)
	big := makeBlobs(cfg.blobs, size)
	var pulls []pulled

	// Push, monolithic.
	res.CPU = map[string]phaseCPU{}
	m := startCPU(cfg.pid)
	n, d, pushed := pushAll(big, cfg.pushConc, errs, "push", func(b *blob) error {
		return c.pushMonolithic(blobRepo, b.digest, b.data)
	})
	recordCPU(res, "push", m)
	res.PushMBps = mbps(n, d)
	logf("%s: push monolithic: %d bytes in %v: %.1f MB/s", cfg.name, n, d.Round(time.Millisecond), res.PushMBps)
	verifyBlobs(c, blobRepo, pushed, cfg.verify, errs, "verify")
	for _, b := range pushed {
		pulls = append(pulls, pulled{b.digest, b.size()})
	}

	// Push, chunked: the same buffers with new content and digests.
	refresh(big)
	m = startCPU(cfg.pid)
	n, d, pushed = pushAll(big, cfg.pushConc, errs, "push_chunked", func(b *blob) error {
		return c.pushChunked(blobRepo, b.digest, b.data, chunk)
	})
	recordCPU(res, "push_chunked", m)
	res.PushChunkedMBps = mbps(n, d)
	logf("%s: push chunked: %d bytes in %v: %.1f MB/s", cfg.name, n, d.Round(time.Millisecond), res.PushChunkedMBps)
	verifyBlobs(c, blobRepo, pushed, cfg.verify, errs, "verify")
	for _, b := range pushed {
		pulls = append(pulls, pulled{b.digest, b.size()})
	}
	big, pushed = nil, nil
	runtime.GC()

	// Pull rounds over every blob pushed above.
	if len(pulls) == 0 {
		errs.add("pull", fmt.Errorf("no blob was pushed, nothing to pull"))
	} else {
		bufs := make([][]byte, cfg.pushConc)
		for i := range bufs {
			bufs[i] = make([]byte, copyBufferBytes)
		}
		var total int64
		var totalD time.Duration
		m = startCPU(cfg.pid)
		for round := range cfg.pullRounds {
			var bytes atomic.Int64
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for w := range min(cfg.pushConc, len(pulls)) {
				wg.Go(func() {
					for {
						i := int(next.Add(1) - 1)
						if i >= len(pulls) {
							return
						}
						p := pulls[i]
						got, err := c.getBlob(blobRepo, p.digest, p.size, nil, bufs[w])
						if err != nil {
							errs.add("pull", err)
							continue
						}
						bytes.Add(got)
					}
				})
			}
			wg.Wait()
			d := time.Since(start)
			total += bytes.Load()
			totalD += d
			r := mbps(bytes.Load(), d)
			res.PullRoundsMBps = append(res.PullRoundsMBps, r)
			logf("%s: pull round %d: %d bytes in %v: %.1f MB/s", cfg.name, round+1, bytes.Load(), d.Round(time.Millisecond), r)
		}
		recordCPU(res, "pull", m)
		res.PullMBps = mbps(total, totalD)
	}

	// Blob HEAD over small blobs.
	smallRepo := cfg.repo + "/small"
	small := makeBlobs(cfg.smallBlobs, cfg.smallSize)
	_, _, small = pushAll(small, cfg.pushConc, errs, "head_setup", func(b *blob) error {
		return c.pushMonolithic(smallRepo, b.digest, b.data)
	})
	if len(small) == 0 {
		errs.add("head", fmt.Errorf("no small blob was pushed, nothing to HEAD"))
	} else {
		urls := make([]string, len(small))
		for i, b := range small {
			urls[i] = c.base + "/v2/" + smallRepo + "/blobs/" + b.digest
		}
		m = startCPU(cfg.pid)
		r := runLoad(cfg.reqConc, cfg.warmup, cfg.duration, errs, "head", func(_, i int) error {
			j := i % len(small)
			return c.headBlob(urls[j], small[j].size())
		})
		recordCPU(res, "head", m)
		res.HeadRPS, res.HeadP50Ms, res.HeadP99Ms = r.rps, r.p50ms, r.p99ms
		logf("%s: blob HEAD: %d ok, %.0f req/s, p50 %.3f ms, p99 %.3f ms", cfg.name, r.ok, r.rps, r.p50ms, r.p99ms)
	}

	// Manifest GET by tag.
	imgRepo := cfg.repo + "/image"
	cfgBlob := &blob{data: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)}
	cfgBlob.digest = sha256Digest(cfgBlob.data)
	layer := makeBlobs(1, 4096)[0]
	manifest := imageManifest(cfgBlob, layer)
	var setupErr error
	for _, b := range []*blob{cfgBlob, layer} {
		if err := c.pushMonolithic(imgRepo, b.digest, b.data); err != nil {
			errs.add("manifest_setup", err)
			setupErr = err
		}
	}
	var tags []string
	if setupErr == nil {
		for i := range cfg.tags {
			tag := fmt.Sprintf("t%d", i)
			if err := c.putManifest(imgRepo, tag, manifest); err != nil {
				errs.add("manifest_setup", err)
				continue
			}
			tags = append(tags, tag)
		}
	}
	if len(tags) == 0 {
		errs.add("manifest", fmt.Errorf("no manifest was pushed, nothing to GET"))
	} else {
		urls := make([]string, len(tags))
		for i, t := range tags {
			urls[i] = c.base + "/v2/" + imgRepo + "/manifests/" + t
		}
		bufs := make([][]byte, cfg.reqConc)
		for i := range bufs {
			bufs[i] = make([]byte, len(manifest)+512)
		}
		m = startCPU(cfg.pid)
		r := runLoad(cfg.reqConc, cfg.warmup, cfg.duration, errs, "manifest", func(w, i int) error {
			return c.getManifest(urls[i%len(urls)], len(manifest), bufs[w])
		})
		recordCPU(res, "manifest", m)
		res.ManifestRPS, res.ManifestP50Ms, res.ManifestP99Ms = r.rps, r.p50ms, r.p99ms
		logf("%s: manifest GET: %d ok, %.0f req/s, p50 %.3f ms, p99 %.3f ms", cfg.name, r.ok, r.rps, r.p50ms, r.p99ms)
	}

	if cfg.pid > 0 {
		rss, err := peakRSSMiB(cfg.pid)
		if err != nil {
			errs.add("rss", err)
		}
		res.PeakRSSMiB = rss
	}

	errs.mu.Lock()
	defer errs.mu.Unlock()
	if len(errs.counts) > 0 {
		res.Errors = errs.counts
		res.FirstErrors = errs.first
	}
	for _, n := range errs.counts {
		res.ErrorsTotal += n
	}
	res.ElapsedS = round1(time.Since(t0).Seconds())
	return res
}
