package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/runner/container"
	"github.com/berth-registry/berth/runner/image"
	"github.com/spf13/cobra"
)

// ---------------------------------------------------------------------------------------------
// logs

func (a *app) logsCommand() *cobra.Command {
	var follow, timestamps, details bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := container.LogsOptions{Follow: follow, Timestamps: timestamps, Tail: -1}
			if tail != "all" && tail != "" {
				n, err := strconv.Atoi(tail)
				if err != nil {
					return fmt.Errorf("invalid value for \"tail\" %q: must be a number or \"all\"", tail)
				}
				if n >= 0 {
					o.Tail = n
				}
			}
			var err error
			if o.Since, err = parseLogTime(since, time.Now()); err != nil {
				return err
			}
			if o.Until, err = parseLogTime(until, time.Now()); err != nil {
				return err
			}
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			err = m.Logs(cmd.Context(), args[0], o, a.stdout, a.stderr)
			if err != nil && cmd.Context().Err() != nil {
				return &statusError{code: 130, err: errSilent} // interrupted (logs -f)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	f.BoolVar(&details, "details", false, "Show extra details provided to logs (none are)")
	f.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	f.StringVar(&since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	f.StringVar(&until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	return cmd
}

// parseLogTime parses --since/--until as Docker does: a duration before now ("10m"), an
// RFC 3339 time or date (local time without a zone), or Unix seconds with a fraction.
func parseLogTime(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("invalid value for \"since\"/\"until\": %q is not a timestamp or a duration", v)
}

// ---------------------------------------------------------------------------------------------
// inspect

func (a *app) inspectCommand() *cobra.Command {
	var format, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on containers or images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch typ {
			case "", "container", "image":
			default:
				return fmt.Errorf("%q is not a valid value for --type", typ)
			}
			return a.runInspect(cmd.Context(), args, format, typ)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template ('json' or a Go template)")
	cmd.Flags().StringVar(&typ, "type", "", "Only inspect objects of the given type (container or image)")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container (not computed)")
	return cmd
}

func (a *app) containerInspectCommand() *cobra.Command {
	var format string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runInspect(cmd.Context(), args, format, "container")
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template ('json' or a Go template)")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes (not computed)")
	return cmd
}

// runInspect is docker inspect: containers first, then images (unless --type says), a
// JSON array, or each object through the template.
func (a *app) runInspect(ctx context.Context, args []string, format, typ string) error {
	var m *container.Manager
	var store *image.Store
	var found []any
	var errs []string
	for _, name := range args {
		var obj any
		var lastErr error
		if typ != "image" {
			if m == nil {
				var err error
				if m, err = a.openContainers(); err != nil {
					return err
				}
			}
			r, err := m.Inspect(ctx, name)
			if err == nil {
				obj = r
			} else if !errors.Is(err, container.ErrNotFound) {
				lastErr = err
			}
		}
		if obj == nil && lastErr == nil && typ != "container" {
			if store == nil {
				var err error
				if store, err = a.openImages(); err != nil {
					return err
				}
				defer store.Close()
			}
			r, err := store.Inspect(name)
			if err == nil {
				obj = r
			} else if !errors.Is(err, image.ErrNotFound) {
				lastErr = err
			}
		}
		switch {
		case obj != nil:
			found = append(found, obj)
		case lastErr != nil:
			errs = append(errs, lastErr.Error())
		case typ == "container":
			errs = append(errs, "No such container: "+name)
		case typ == "image":
			errs = append(errs, "No such image: "+name)
		default:
			errs = append(errs, "No such object: "+name)
		}
	}
	if err := a.printInspect(found, format); err != nil {
		return err
	}
	return a.printErrors(errs)
}

// printInspect prints objects as Docker's inspect: an indented JSON array, or one line per
// object through the template, which sees the JSON (Docker's field names: .Id,
// .State.Status, .HostConfig.Memory…).
func (a *app) printInspect(objs []any, format string) error {
	if format == "" || format == "json" {
		if objs == nil {
			objs = []any{}
		}
		b, err := json.MarshalIndent(objs, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s\n", b)
		return nil
	}
	tmpl, err := parseTemplate(format)
	if err != nil {
		return err
	}
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, v); err != nil {
			return fmt.Errorf("template: %w", err)
		}
		fmt.Fprintln(a.stdout, buf.String())
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// stats

// statsRow is one line of `stats` (and its --format json object).
type statsRow struct {
	BlockIO   string
	CPUPerc   string
	Container string
	ID        string
	MemPerc   string
	MemUsage  string
	Name      string
	NetIO     string
	PIDs      string
}

var statsHeader = statsRow{BlockIO: "BLOCK I/O", CPUPerc: "CPU %", Container: "CONTAINER", ID: "CONTAINER ID",
	MemPerc: "MEM %", MemUsage: "MEM USAGE / LIMIT", Name: "NAME", NetIO: "NET I/O", PIDs: "PIDS"}

const statsDefaultTable = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.PIDs}}"

var binaryUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}

// bytesSize is go-units' BytesSize: binary units, 4 significant digits ("1.523MiB").
func bytesSize(size float64) string {
	i := 0
	for size >= 1024 && i < len(binaryUnits)-1 {
		size /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", size, binaryUnits[i])
}

func (a *app) statsCommand() *cobra.Command {
	var all, noStream, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.openContainers()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			tty, _ := isTerminal(a.stdout)
			for {
				names := args
				if len(names) == 0 {
					list, err := m.List(ctx, container.ListOptions{All: all})
					if err != nil {
						return err
					}
					for _, s := range list {
						names = append(names, s.ID)
					}
				}
				rows, errs := a.sampleStats(ctx, m, names, noTrunc)
				if ctx.Err() != nil {
					return nil // interrupted: the end of a stream
				}
				if len(errs) > 0 && len(args) > 0 {
					for _, e := range errs {
						fmt.Fprintf(a.stderr, "Error: %s\n", e)
					}
					return errSilent
				}
				if !noStream && tty {
					fmt.Fprint(a.stdout, "\x1b[2J\x1b[H")
				}
				if err := formatRows(a.stdout, format, statsDefaultTable, statsHeader, rows); err != nil {
					return err
				}
				if noStream {
					return nil
				}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	f.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	f.StringVar(&format, "format", "", "Format output using a custom template ('table', 'table TEMPLATE', 'json' or a Go template)")
	return cmd
}

// sampleStats samples the containers at once (each over one second).
func (a *app) sampleStats(ctx context.Context, m *container.Manager, names []string, noTrunc bool) ([]statsRow, []error) {
	rows := make([]statsRow, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := m.Stats(ctx, name, time.Second)
			if err != nil {
				errs[i] = err
				return
			}
			row := statsRow{
				Container: name,
				ID:        r.ID,
				Name:      strings.TrimPrefix(r.Name, "/"),
				CPUPerc:   fmt.Sprintf("%.2f%%", r.CPUPercent),
				MemUsage:  bytesSize(float64(r.MemoryUsage)) + " / " + bytesSize(float64(r.MemoryLimit)),
				MemPerc:   fmt.Sprintf("%.2f%%", r.MemoryPercent),
				NetIO:     "0B / 0B",
				BlockIO:   "0B / 0B",
				PIDs:      strconv.FormatUint(r.PIDs, 10),
			}
			if !noTrunc {
				row.ID = r.ID[:min(12, len(r.ID))]
			}
			rows[i] = row
		}()
	}
	wg.Wait()
	var outRows []statsRow
	var outErrs []error
	for i := range names {
		if errs[i] != nil {
			outErrs = append(outErrs, errs[i])
			continue
		}
		outRows = append(outRows, rows[i])
	}
	return outRows, outErrs
}
