package container

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// InspectResult is docker inspect's JSON of a container (the fields Berth has).
type InspectResult struct {
	ID              string          `json:"Id"`
	Created         time.Time       `json:"Created"`
	Path            string          `json:"Path"`
	Args            []string        `json:"Args"`
	State           InspectState    `json:"State"`
	Image           string          `json:"Image"`
	ResolvConfPath  string          `json:"ResolvConfPath"`
	HostnamePath    string          `json:"HostnamePath"`
	HostsPath       string          `json:"HostsPath"`
	LogPath         string          `json:"LogPath"`
	Name            string          `json:"Name"`
	RestartCount    int             `json:"RestartCount"`
	Driver          string          `json:"Driver"`
	Platform        string          `json:"Platform"`
	MountLabel      string          `json:"MountLabel"`
	ProcessLabel    string          `json:"ProcessLabel"`
	AppArmorProfile string          `json:"AppArmorProfile"`
	ExecIDs         []string        `json:"ExecIDs"`
	HostConfig      HostConfig      `json:"HostConfig"`
	GraphDriver     GraphDriver     `json:"GraphDriver"`
	Mounts          []MountPoint    `json:"Mounts"`
	Config          DockerConfig    `json:"Config"`
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
}

// InspectState is inspect's "State".
type InspectState struct {
	Status     string    `json:"Status"`
	Running    bool      `json:"Running"`
	Paused     bool      `json:"Paused"`
	Restarting bool      `json:"Restarting"`
	OOMKilled  bool      `json:"OOMKilled"`
	Dead       bool      `json:"Dead"`
	Pid        int       `json:"Pid"`
	ExitCode   int       `json:"ExitCode"`
	Error      string    `json:"Error"`
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
}

// GraphDriver is inspect's "GraphDriver": the overlay's directories.
type GraphDriver struct {
	Name string            `json:"Name"`
	Data map[string]string `json:"Data"`
}

// NetworkSettings is inspect's "NetworkSettings", filled by the network layer's hook. The
// top-level address fields describe the default bridge network only, as in Docker.
type NetworkSettings struct {
	Bridge      string                       `json:"Bridge"`
	SandboxID   string                       `json:"SandboxID"`
	SandboxKey  string                       `json:"SandboxKey"`
	Ports       map[string][]PortBinding     `json:"Ports"`
	EndpointID  string                       `json:"EndpointID"`
	Gateway     string                       `json:"Gateway"`
	IPAddress   string                       `json:"IPAddress"`
	IPPrefixLen int                          `json:"IPPrefixLen"`
	MacAddress  string                       `json:"MacAddress"`
	Networks    map[string]*EndpointSettings `json:"Networks"`
}

// PortBinding is a published port's host side.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// EndpointSettings is one network of inspect's NetworkSettings.Networks.
type EndpointSettings struct {
	IPAMConfig  *EndpointIPAMConfig `json:"IPAMConfig"`
	Links       []string            `json:"Links"`
	Aliases     []string            `json:"Aliases"`
	MacAddress  string              `json:"MacAddress"`
	NetworkID   string              `json:"NetworkID"`
	EndpointID  string              `json:"EndpointID"`
	Gateway     string              `json:"Gateway"`
	IPAddress   string              `json:"IPAddress"`
	IPPrefixLen int                 `json:"IPPrefixLen"`
	DNSNames    []string            `json:"DNSNames"`
}

// EndpointIPAMConfig is an endpoint's requested address (--ip).
type EndpointIPAMConfig struct {
	IPv4Address string `json:"IPv4Address,omitempty"`
}

// SummaryPort is one published port in ps's Ports.
type SummaryPort struct {
	IP          string `json:"IP,omitempty"`
	PrivatePort int    `json:"PrivatePort"`
	PublicPort  int    `json:"PublicPort,omitempty"`
	Type        string `json:"Type"`
}

// Inspect returns the container as docker inspect shows it.
func (m *Manager) Inspect(ctx context.Context, nameOrID string) (*InspectResult, error) {
	c, st, err := m.view(nameOrID)
	if err != nil {
		return nil, err
	}
	r := c.inspect(st)
	c.decorateInspect(m.s.Dir(c.ID), st.Status.Active(), r)
	return r, nil
}

func (c *Container) inspect(st *State) *InspectResult {
	r := &InspectResult{
		ID:             c.ID,
		Created:        c.Created,
		Image:          c.Image,
		ResolvConfPath: c.ResolvConfPath,
		HostnamePath:   c.HostnamePath,
		HostsPath:      c.HostsPath,
		LogPath:        c.LogPath,
		Name:           "/" + c.Name,
		RestartCount:   st.RestartCount,
		Driver:         "overlay2",
		Platform:       "linux",
		HostConfig:     c.HostConfig,
		Mounts:         c.Mounts,
		Config:         c.Config,
		GraphDriver: GraphDriver{Name: "overlay2", Data: map[string]string{
			"LowerDir":  strings.Join(c.Rootfs.Lower, ":"),
			"UpperDir":  c.Rootfs.Upper,
			"WorkDir":   c.Rootfs.Work,
			"MergedDir": c.Rootfs.Path,
		}},
		NetworkSettings: NetworkSettings{Ports: map[string][]PortBinding{}, Networks: map[string]*EndpointSettings{}},
		State: InspectState{
			Status:     string(st.Status),
			Running:    st.Status == StatusRunning || st.Status == StatusPaused || st.Status == StatusRestarting,
			Paused:     st.Status == StatusPaused,
			Restarting: st.Status == StatusRestarting,
			OOMKilled:  st.OOMKilled,
			Dead:       st.Status == StatusDead,
			Pid:        st.Pid,
			ExitCode:   st.ExitCode,
			Error:      st.Error,
			StartedAt:  st.StartedAt,
			FinishedAt: st.FinishedAt,
		},
	}
	if c.Spec != nil && c.Spec.Process != nil && len(c.Spec.Process.Args) > 0 {
		r.Path = c.Spec.Process.Args[0]
		r.Args = append([]string{}, c.Spec.Process.Args[1:]...)
	}
	if c.Spec != nil && c.Spec.Linux != nil {
		for _, ns := range c.Spec.Linux.Namespaces {
			if ns.Type == "network" && ns.Path != "" {
				r.NetworkSettings.SandboxKey = ns.Path
			}
		}
	}
	if r.Mounts == nil {
		r.Mounts = []MountPoint{}
	}
	return r
}

// Summary is a container as docker ps (the API's container list) shows it.
type Summary struct {
	ID         string            `json:"Id"`
	Names      []string          `json:"Names"`
	Image      string            `json:"Image"`
	ImageID    string            `json:"ImageID"`
	Command    string            `json:"Command"`
	Created    int64             `json:"Created"`
	Ports      []SummaryPort     `json:"Ports"`
	Labels     map[string]string `json:"Labels"`
	State      string            `json:"State"`
	Status     string            `json:"Status"`
	HostConfig struct {
		NetworkMode string `json:"NetworkMode"`
	} `json:"HostConfig"`
	Mounts []MountPoint `json:"Mounts"`
	// RestartCount and ExitCode are not in Docker's list; ps --format may want them.
	RestartCount int `json:"RestartCount"`
	ExitCode     int `json:"ExitCode"`
}

// ListOptions are ps's options.
type ListOptions struct {
	// All lists stopped containers too (-a).
	All bool
	// Filters are --filter values: id, name, label (key or key=value), status, exited,
	// ancestor, before, since.
	Filters map[string][]string
	// Limit shows the n last created containers (-n; 0: no limit); Latest is -l.
	Limit  int
	Latest bool
}

var validStatuses = map[string]bool{
	"created": true, "restarting": true, "running": true, "removing": true,
	"paused": true, "exited": true, "dead": true,
}

// List lists the containers (docker ps), newest first.
func (m *Manager) List(ctx context.Context, o ListOptions) ([]Summary, error) {
	for k, vs := range o.Filters {
		switch k {
		case "id", "name", "label", "exited", "ancestor", "before", "since":
		case "status":
			for _, v := range vs {
				if !validStatuses[v] {
					return nil, invalidf("Invalid filter 'status=%s'", v)
				}
			}
		default:
			return nil, invalidf("invalid filter '%s'", k)
		}
	}
	var exited []int
	for _, v := range o.Filters["exited"] {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, invalidf("invalid filter 'exited=%s'", v)
		}
		exited = append(exited, n)
	}
	ids, err := m.s.IDs()
	if err != nil {
		return nil, err
	}
	type item struct {
		c  *Container
		st *State
	}
	var items []item
	for _, id := range ids {
		c, st, err := m.view(id)
		if err != nil {
			continue
		}
		items = append(items, item{c, st})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].c.Created.After(items[j].c.Created) })
	created := func(ref string) (time.Time, error) {
		for _, it := range items {
			if it.c.ID == ref || it.c.Name == strings.TrimPrefix(ref, "/") || strings.HasPrefix(it.c.ID, ref) {
				return it.c.Created, nil
			}
		}
		return time.Time{}, notFound(ref)
	}
	var before, since time.Time
	for _, v := range o.Filters["before"] {
		if before, err = created(v); err != nil {
			return nil, err
		}
	}
	for _, v := range o.Filters["since"] {
		if since, err = created(v); err != nil {
			return nil, err
		}
	}
	all := o.All || o.Limit > 0 || o.Latest || len(o.Filters["status"]) > 0 || len(exited) > 0
	now := time.Now()
	out := []Summary{}
	for _, it := range items {
		c, st := it.c, it.st
		if !all && st.Status != StatusRunning && st.Status != StatusPaused && st.Status != StatusRestarting {
			continue
		}
		if !matchAny(o.Filters["id"], func(v string) bool { return strings.HasPrefix(c.ID, v) }) ||
			!matchAny(o.Filters["name"], func(v string) bool { return strings.Contains(c.Name, strings.TrimPrefix(v, "/")) }) ||
			!matchAny(o.Filters["status"], func(v string) bool { return v == string(st.Status) }) ||
			!matchAny(o.Filters["ancestor"], func(v string) bool {
				return v == c.ImageRef || v == c.Image || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(v, "sha256:")) || v+":latest" == c.ImageRef
			}) ||
			!matchLabels(c.Config.Labels, o.Filters["label"], true) {
			continue
		}
		if len(exited) > 0 && (st.Status != StatusExited || !contains(exited, st.ExitCode)) {
			continue
		}
		if !before.IsZero() && !c.Created.Before(before) || !since.IsZero() && !c.Created.After(since) {
			continue
		}
		s := Summary{
			ID:           c.ID,
			Names:        []string{"/" + c.Name},
			Image:        c.ImageRef,
			ImageID:      c.Image,
			Created:      c.Created.Unix(),
			Ports:        []SummaryPort{},
			Labels:       c.Config.Labels,
			State:        string(st.Status),
			Status:       statusString(st, now),
			Mounts:       c.Mounts,
			RestartCount: st.RestartCount,
			ExitCode:     st.ExitCode,
		}
		if c.Spec != nil && c.Spec.Process != nil {
			s.Command = strings.Join(c.Spec.Process.Args, " ")
		}
		s.HostConfig.NetworkMode = c.HostConfig.NetworkMode
		c.decorateSummary(m.s.Dir(c.ID), st.Status.Active(), &s)
		out = append(out, s)
		if o.Latest && len(out) == 1 || o.Limit > 0 && len(out) == o.Limit {
			break
		}
	}
	return out, nil
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func matchAny(vals []string, f func(string) bool) bool {
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if f(v) {
			return true
		}
	}
	return false
}

// matchLabels checks label filters (key or key=value): all must match (want true) or
// none (want false, label!).
func matchLabels(labels map[string]string, filters []string, want bool) bool {
	for _, f := range filters {
		k, v, hasV := strings.Cut(f, "=")
		got, ok := labels[k]
		match := ok && (!hasV || got == v)
		if match != want {
			return false
		}
	}
	return true
}

// statusString is ps's STATUS column, Docker's wording.
func statusString(st *State, now time.Time) string {
	switch st.Status {
	case StatusRunning:
		return "Up " + HumanDuration(now.Sub(st.StartedAt))
	case StatusPaused:
		return "Up " + HumanDuration(now.Sub(st.StartedAt)) + " (Paused)"
	case StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, HumanDuration(now.Sub(st.FinishedAt)))
	case StatusRemoving:
		return "Removal In Progress"
	case StatusDead:
		return "Dead"
	case StatusCreated:
		return "Created"
	}
	if st.FinishedAt.IsZero() {
		return fmt.Sprintf("Exited (%d)", st.ExitCode)
	}
	return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, HumanDuration(now.Sub(st.FinishedAt)))
}

// HumanDuration is Docker's (go-units) human-readable duration: "Less than a second",
// "3 seconds", "About a minute", "2 hours", …
func HumanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < 1 {
		return "Less than a second"
	} else if seconds == 1 {
		return "1 second"
	} else if seconds < 60 {
		return fmt.Sprintf("%d seconds", seconds)
	} else if minutes := int(d.Minutes()); minutes == 1 {
		return "About a minute"
	} else if minutes < 60 {
		return fmt.Sprintf("%d minutes", minutes)
	} else if hours := int(d.Hours() + 0.5); hours == 1 {
		return "About an hour"
	} else if hours < 48 {
		return fmt.Sprintf("%d hours", hours)
	} else if hours < 24*7*2 {
		return fmt.Sprintf("%d days", hours/24)
	} else if hours < 24*30*2 {
		return fmt.Sprintf("%d weeks", hours/24/7)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// parseTimeFilter parses an until/since value: RFC 3339 (or a date), Unix seconds, or a
// duration before now ("10m").
func parseTimeFilter(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	if sec, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(int64(sec), int64((sec-float64(int64(sec)))*1e9)), nil
	}
	return time.Time{}, invalidf("invalid time filter %q", v)
}
