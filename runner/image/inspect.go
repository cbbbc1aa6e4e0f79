package image

import (
	"encoding/json"
	"fmt"
	"time"
)

// InspectResponse is `docker image inspect`'s JSON for one image.
type InspectResponse struct {
	ID            string           `json:"Id"`
	RepoTags      []string         `json:"RepoTags"`
	RepoDigests   []string         `json:"RepoDigests"`
	Parent        string           `json:"Parent"`
	Comment       string           `json:"Comment"`
	Created       string           `json:"Created,omitempty"`
	DockerVersion string           `json:"DockerVersion"`
	Author        string           `json:"Author"`
	Config        *ContainerConfig `json:"Config"`
	Architecture  string           `json:"Architecture"`
	Variant       string           `json:"Variant,omitempty"`
	Os            string           `json:"Os"`
	OsVersion     string           `json:"OsVersion,omitempty"`
	Size          int64            `json:"Size"`
	GraphDriver   GraphDriver      `json:"GraphDriver"`
	RootFS        RootFS           `json:"RootFS"`
	Metadata      Metadata         `json:"Metadata"`
}

// ContainerConfig is the "config" of an image config in Docker's shape (a superset of the
// OCI ImageConfig: Docker-built images carry Healthcheck, OnBuild, Shell, …).
type ContainerConfig struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Healthcheck  *HealthConfig       `json:"Healthcheck,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	OnBuild      []string            `json:"OnBuild"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

// HealthConfig is Docker's healthcheck of an image config (durations in nanoseconds).
type HealthConfig struct {
	Test          []string      `json:",omitempty"`
	Interval      time.Duration `json:",omitempty"`
	Timeout       time.Duration `json:",omitempty"`
	StartPeriod   time.Duration `json:",omitempty"`
	StartInterval time.Duration `json:",omitempty"`
	Retries       int           `json:",omitempty"`
}

// GraphDriver tells where the image's layers are.
type GraphDriver struct {
	Data map[string]string `json:"Data"`
	Name string            `json:"Name"`
}

// RootFS lists the image's layers by DiffID.
type RootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

// Metadata is Docker's image metadata.
type Metadata struct {
	LastTagTime time.Time `json:"LastTagTime"`
}

// dockerImageConfig is the part of an image config inspect shows.
type dockerImageConfig struct {
	Created       *time.Time       `json:"created,omitempty"`
	Author        string           `json:"author,omitempty"`
	Comment       string           `json:"comment,omitempty"`
	DockerVersion string           `json:"docker_version,omitempty"`
	Parent        string           `json:"parent,omitempty"`
	Config        *ContainerConfig `json:"config,omitempty"`
}

// Inspect returns `docker image inspect`'s view of the image ref (anything Lookup takes).
func (s *Store) Inspect(ref string) (*InspectResponse, error) {
	img, err := s.Lookup(ref)
	if err != nil {
		return nil, err
	}
	return s.InspectImage(img)
}

// InspectImage returns `docker image inspect`'s view of img.
func (s *Store) InspectImage(img *Image) (*InspectResponse, error) {
	raw, err := s.Content(img.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", img.ShortID(), err)
	}
	var dc dockerImageConfig
	if err := json.Unmarshal(raw, &dc); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", img.ShortID(), err)
	}
	r := &InspectResponse{
		ID:            img.ID.String(),
		RepoTags:      []string{},
		RepoDigests:   []string{},
		Parent:        dc.Parent,
		Comment:       dc.Comment,
		DockerVersion: dc.DockerVersion,
		Author:        dc.Author,
		Config:        dc.Config,
		Architecture:  img.Platform.Architecture,
		Variant:       img.Platform.Variant,
		Os:            img.Platform.OS,
		OsVersion:     img.Platform.OSVersion,
		Size:          img.Size,
		GraphDriver:   GraphDriver{Name: "overlay", Data: map[string]string{}},
		RootFS:        RootFS{Type: "layers", Layers: []string{}},
		Metadata:      Metadata{LastTagTime: img.LastTagTime},
	}
	if r.Config == nil {
		r.Config = &ContainerConfig{}
	}
	if dc.Created != nil {
		r.Created = dc.Created.UTC().Format(time.RFC3339Nano)
	}
	for _, t := range img.RepoTags {
		r.RepoTags = append(r.RepoTags, Familiar(t))
	}
	for _, d := range img.RepoDigests {
		r.RepoDigests = append(r.RepoDigests, Familiar(d))
	}
	for _, l := range img.Layers {
		r.RootFS.Layers = append(r.RootFS.Layers, l.DiffID.String())
	}
	if lower, err := s.snaps.LowerDirs(img.ChainIDs()); err == nil && lower != "" {
		r.GraphDriver.Data["LowerDir"] = lower
	}
	return r, nil
}
