package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/runner/image"
)

// layerPrinter shows a pull's or a push's progress as `docker pull` and `docker push` do:
// on a terminal, one line per layer redrawn in place, with a progress bar while bytes move
// ("Downloading [==>   ]  12MB/40MB"); otherwise one plain line per state change, without
// the byte-count states.
type layerPrinter struct {
	mu     sync.Mutex
	out    io.Writer
	tty    bool
	width  int
	now    func() time.Time
	moving image.Status   // the state whose line carries the progress bar
	quiet  []image.Status // states not printed off a terminal

	layers map[string]*layerLine
	drawn  int // lines of the block currently on screen
	last   time.Time
}

type layerLine struct {
	index   int
	id      string
	status  image.Status
	current int64
	total   int64
	started time.Time // first event of the moving state
}

// newPullPrinter is `docker pull`'s progress: bars while downloading; off a terminal no
// Downloading, Extracting or failure lines.
func newPullPrinter(out io.Writer, tty bool, width int) *layerPrinter {
	return newLayerPrinter(out, tty, width, image.StatusDownloading,
		image.StatusDownloading, image.StatusExtracting, image.StatusFailed)
}

// newPushPrinter is `docker push`'s progress: bars while pushing; off a terminal no
// Pushing or failure lines.
func newPushPrinter(out io.Writer, tty bool, width int) *layerPrinter {
	return newLayerPrinter(out, tty, width, image.StatusPushing, image.StatusPushing, image.StatusFailed)
}

func newLayerPrinter(out io.Writer, tty bool, width int, moving image.Status, quiet ...image.Status) *layerPrinter {
	return &layerPrinter{out: out, tty: tty, width: width, now: time.Now, moving: moving, quiet: quiet,
		layers: map[string]*layerLine{}}
}

// Report implements image.Reporter.
func (p *layerPrinter) Report(ev image.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.layers[ev.ID]
	if l == nil {
		l = &layerLine{index: ev.Index, id: ev.ID}
		p.layers[ev.ID] = l
	}
	l.index = min(l.index, ev.Index)
	changed := l.status != ev.Status
	l.status, l.total = ev.Status, ev.Total
	if ev.Status == p.moving {
		if l.started.IsZero() {
			l.started = p.now()
		}
		l.current = ev.Current
	}
	if !p.tty {
		if changed && !slices.Contains(p.quiet, ev.Status) {
			fmt.Fprintf(p.out, "%s: %s\n", ev.ID, ev.Status)
		}
		return
	}
	// On a terminal: redraw on every state change, and at most 10 times a second for bytes.
	if !changed && p.now().Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.redraw()
}

// Flush draws the final state (on a terminal).
func (p *layerPrinter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && len(p.layers) > 0 {
		p.redraw()
	}
}

func (p *layerPrinter) redraw() {
	p.last = p.now()
	lines := make([]*layerLine, 0, len(p.layers))
	for _, l := range p.layers {
		lines = append(lines, l)
	}
	slices.SortFunc(lines, func(a, b *layerLine) int {
		if a.index != b.index {
			return a.index - b.index
		}
		return strings.Compare(a.id, b.id)
	})
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, l := range lines {
		text := p.format(l)
		if p.width > 1 && len(text) > p.width-1 {
			text = text[:p.width-1] // a wrapped line would break the cursor arithmetic
		}
		b.WriteString("\x1b[2K\r")
		b.WriteString(text)
		b.WriteByte('\n')
	}
	p.drawn = len(lines)
	io.WriteString(p.out, b.String())
}

// format renders one layer line: "<id>: Downloading [====>   ]  12.3MB/45.6MB  5.2MB/s".
func (p *layerPrinter) format(l *layerLine) string {
	s := l.id + ": " + string(l.status)
	if l.status != p.moving {
		return s
	}
	return s + " " + progressBar(l.current, l.total, p.width, p.now().Sub(l.started))
}

// progressBar is Docker's JSONProgress rendering (bar only on terminals wider than 110
// columns), followed by the download speed.
func progressBar(current, total int64, width int, elapsed time.Duration) string {
	if current <= 0 && total <= 0 {
		return ""
	}
	if total <= 0 {
		return fmt.Sprintf("%8v", humanSizePrecision(float64(current), 4))
	}
	var bar string
	if width > 110 {
		pct := int(float64(current)/float64(total)*100) / 2
		pct = min(pct, 50)
		spaces := max(50-pct, 0)
		bar = fmt.Sprintf("[%s>%s] ", strings.Repeat("=", pct), strings.Repeat(" ", spaces))
	}
	numbers := fmt.Sprintf("%8v/%v", humanSizePrecision(float64(current), 4), humanSizePrecision(float64(total), 4))
	if current > total {
		numbers = fmt.Sprintf("%8v", humanSizePrecision(float64(current), 4))
	}
	speed := ""
	if elapsed >= 200*time.Millisecond && current > 0 {
		speed = "  " + humanSizePrecision(float64(current)/elapsed.Seconds(), 3) + "/s"
	}
	return bar + numbers + speed
}
