package main

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/volume"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// volumePlan is what -v, --mount and --volumes-from asked for, checked at plan time.
type volumePlan struct {
	// mounts are -v then --mount values, in order.
	mounts []volume.Mount
	// from are the --volumes-from values.
	from []volumesFrom
	// anon are the -v values without a source, as given (Config.Volumes, as Docker's CLI
	// puts them); apiMounts the --mount values in the API's shape (HostConfig.Mounts).
	anon      []string
	apiMounts []container.Mount
}

type volumesFrom struct{ name, mode string }

// planVolumes parses -v, --mount and --volumes-from with Docker's rules (no store is
// touched; bind sources must exist: Berth never creates host paths) into o.volPlan.
func planVolumes(o *runOptions) error {
	vp := &volumePlan{}
	seen := map[string]bool{}
	for _, t := range o.tmpfs {
		dst, _, _ := strings.Cut(t, ":")
		if path.IsAbs(dst) {
			seen[path.Clean(dst)] = true
		}
	}
	add := func(m volume.Mount) error {
		if seen[m.Target] {
			return fmt.Errorf("Duplicate mount point: %s", m.Target)
		}
		seen[m.Target] = true
		if err := volume.CheckBindSource(m); err != nil {
			return err
		}
		vp.mounts = append(vp.mounts, m)
		return nil
	}
	for _, v := range o.volumes {
		m, err := volume.ParseVolume(v)
		if err != nil {
			return err
		}
		if err := add(m); err != nil {
			return err
		}
		if m.Type == volume.TypeVolume && m.Source == "" {
			vp.anon = append(vp.anon, v)
		}
	}
	for _, v := range o.mounts {
		m, err := volume.ParseMount(v)
		if err != nil {
			return err
		}
		if err := add(m); err != nil {
			return err
		}
		vp.apiMounts = append(vp.apiMounts, apiMount(m))
	}
	for _, v := range o.volumesFrom {
		name, mode, err := volume.ParseVolumesFrom(v)
		if err != nil {
			return err
		}
		vp.from = append(vp.from, volumesFrom{name, mode})
	}
	o.volPlan = vp
	return nil
}

// volMount is a mount of the container being created, with where it came from.
type volMount struct {
	m volume.Mount
	// shared: from --volumes-from (the volume must exist; no copy-up).
	shared bool
	// req is the index of the volume in the reservation (-1: not a volume).
	req int
}

// createContainer creates the container of p with its mounts: --volumes-from's (own
// mounts win), -v and --mount, anonymous volumes for the image's VOLUMEs no mount covers;
// missing volumes are created, the new ones filled with the image's content (copy-up),
// and the container references its volumes (removed with it by rm -v when anonymous).
func (a *app) createContainer(ctx context.Context, m *container.Manager, p *createPlan, o *runOptions) (*container.Container, error) {
	vp := o.volPlan
	if vp == nil {
		vp = &volumePlan{}
	}
	p.create.Volumes, p.create.HostMounts = vp.anon, vp.apiMounts
	covered := map[string]bool{}
	for _, t := range p.spec.Tmpfs {
		dst, _, _ := strings.Cut(t, ":")
		covered[path.Clean(dst)] = true
	}
	for _, mt := range vp.mounts {
		covered[mt.Target] = true
	}
	var mounts []volMount
	fromIdx := map[string]int{}
	for _, f := range vp.from {
		r, err := m.Inspect(ctx, f.name)
		if err != nil {
			return nil, err
		}
		for _, mp := range r.Mounts {
			if covered[mp.Destination] || (mp.Type != volume.TypeVolume && mp.Type != volume.TypeBind) {
				continue
			}
			mt := volume.Mount{Type: mp.Type, Target: mp.Destination, Mode: mp.Mode, Propagation: mp.Propagation,
				ReadOnly: !mp.RW || strings.Contains(","+f.mode+",", ",ro,")}
			if mp.Type == volume.TypeVolume {
				mt.Source = mp.Name
				mt.Propagation = ""
			} else {
				mt.Source = mp.Source
			}
			vm := volMount{m: mt, shared: true, req: -1}
			if i, dup := fromIdx[mt.Target]; dup {
				mounts[i] = vm // the later --volumes-from wins
				continue
			}
			fromIdx[mt.Target] = len(mounts)
			mounts = append(mounts, vm)
		}
	}
	for _, mt := range vp.mounts {
		mounts = append(mounts, volMount{m: mt, req: -1})
		covered[mt.Target] = true
	}
	for dst := range fromIdx {
		covered[dst] = true
	}
	if cfg := p.create.Image.Config; cfg != nil && len(cfg.Config.Volumes) > 0 {
		dests := make([]string, 0, len(cfg.Config.Volumes))
		for d := range cfg.Config.Volumes {
			dests = append(dests, d)
		}
		sort.Strings(dests)
		for _, d := range dests {
			if !path.IsAbs(d) || strings.ContainsRune(d, 0) || path.Clean(d) == "/" {
				return nil, fmt.Errorf("invalid VOLUME %q in the image's config: the path must be absolute and not /", d)
			}
			d = path.Clean(d)
			if covered[d] {
				continue
			}
			covered[d] = true
			mounts = append(mounts, volMount{m: volume.Mount{Type: volume.TypeVolume, Target: d}, req: -1})
		}
	}
	if len(mounts) == 0 {
		return m.Create(ctx, p.create)
	}

	var store *volume.Store
	var reqs []volume.Request
	for i := range mounts {
		if mounts[i].m.Type != volume.TypeVolume {
			continue
		}
		mounts[i].req = len(reqs)
		reqs = append(reqs, volume.Request{Name: mounts[i].m.Source, Labels: mounts[i].m.Labels, MustExist: mounts[i].shared})
	}
	var res *volume.Reservation
	if len(reqs) > 0 {
		var err error
		if store, err = volume.Open(a.root); err != nil {
			return nil, err
		}
		if res, err = store.Reserve(ctx, reqs); err != nil {
			return nil, err
		}
		ref, err := store.HookRef(res.Names())
		if err != nil {
			store.Release(context.WithoutCancel(ctx), res.Names(), res.Token, true)
			return nil, err
		}
		p.create.Hooks = append(p.create.Hooks, ref)
	}
	var specMounts []specs.Mount
	var points []container.MountPoint
	var binds []string
	for i := range mounts {
		mt := &mounts[i].m
		source := mt.Source
		if mounts[i].req >= 0 {
			v := res.Volumes[mounts[i].req]
			mt.Source, source = v.Name, v.Mountpoint
		}
		specMounts = append(specMounts, mt.SpecMount(source))
		points = append(points, mt.MountPoint(source))
		if mt.Bind != "" && !mounts[i].shared {
			binds = append(binds, mt.Bind)
		}
	}
	p.spec.Mounts = append(p.spec.Mounts, specMounts...)
	p.create.Mounts = points
	p.create.Binds = binds

	c, err := m.Create(ctx, p.create)
	if err != nil {
		if res != nil {
			store.Release(context.WithoutCancel(ctx), res.Names(), res.Token, true)
		}
		return nil, err
	}
	if res == nil {
		return c, nil
	}
	fail := func(err error) (*container.Container, error) {
		rctx := context.WithoutCancel(ctx)
		m.Remove(rctx, c.ID, container.RemoveOptions{Force: true, Volumes: true})
		store.Release(rctx, res.Names(), res.Token, true)
		return nil, err
	}
	if err := store.Commit(ctx, res.Names(), res.Token, c.ID); err != nil {
		return fail(err)
	}
	for _, vm := range mounts {
		if vm.req < 0 || vm.shared || vm.m.NoCopy {
			continue
		}
		if err := store.CopyUp(ctx, res.Volumes[vm.req], p.create.Lower, vm.m.Target); err != nil {
			return fail(fmt.Errorf("volume %s: %w", res.Volumes[vm.req].Name, err))
		}
	}
	return c, nil
}

// apiMount is a parsed --mount value in the shape of Docker's API (HostConfig.Mounts): the
// options of its type only when one was set.
func apiMount(m volume.Mount) container.Mount {
	am := container.Mount{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	switch m.Type {
	case volume.TypeBind:
		if m.Propagation != "" {
			am.BindOptions = &container.BindOptions{Propagation: m.Propagation}
		}
	case volume.TypeVolume:
		if m.NoCopy || len(m.Labels) > 0 {
			am.VolumeOptions = &container.VolumeOptions{NoCopy: m.NoCopy, Labels: m.Labels}
		}
	case volume.TypeTmpfs:
		if m.TmpfsSize != 0 || m.TmpfsMode != 0 {
			am.TmpfsOptions = &container.TmpfsOptions{SizeBytes: m.TmpfsSize, Mode: m.TmpfsMode}
		}
	}
	return am
}
