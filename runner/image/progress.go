package image

import (
	digest "github.com/opencontainers/go-digest"
)

// Status is the state of one layer during a pull, worded as `docker pull` prints it.
type Status string

// The layer states, in the order a layer goes through them.
const (
	StatusPullingFSLayer   Status = "Pulling fs layer"
	StatusWaiting          Status = "Waiting"
	StatusDownloading      Status = "Downloading"
	StatusVerifying        Status = "Verifying Checksum"
	StatusDownloadComplete Status = "Download complete"
	StatusExtracting       Status = "Extracting"
	StatusPullComplete     Status = "Pull complete"
	StatusAlreadyExists    Status = "Already exists"
	// StatusFailed is reported for a layer whose download or unpacking failed.
	StatusFailed Status = "Failed"
)

// Progress is one event of a pull.
type Progress struct {
	// Index is the layer's position in the image, bottom first.
	Index int
	// ID is the short form of the layer's digest (12 hex digits), as Docker shows it.
	ID string
	// Digest is the layer's (compressed) digest.
	Digest digest.Digest
	// Status is the layer's new state.
	Status Status
	// Current and Total are compressed bytes received and the blob size, for
	// StatusDownloading (Total is the size for every status, when known).
	Current, Total int64
}

// Reporter receives pull progress. Report is called from several goroutines (one per
// layer): implementations synchronise themselves.
type Reporter interface {
	Report(Progress)
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(Progress)

// Report calls f.
func (f ReporterFunc) Report(p Progress) { f(p) }

type nopReporter struct{}

func (nopReporter) Report(Progress) {}
